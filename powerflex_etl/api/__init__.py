"""HTTP only, no storage: the PowerFlex API client (CONTRACT §1).

``client`` holds the session, the call loop and one method per endpoint; ``auth`` says when
to log in again (JWT claims); ``retry`` what is retried, how long to wait (backoff, its cap,
``Retry-After``) and when to give up; ``checks`` validates request bodies before sending.
"""

from powerflex_etl.api.client import PowerflexClient

__all__ = ["PowerflexClient"]
