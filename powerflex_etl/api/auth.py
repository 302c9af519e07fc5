"""Pure helpers for the client: JWT claims, refresh deadlines, ``Retry-After``, backoff.

The token's signature is never checked: the client only needs to know when to log in
again, and the server is the one that trusts or refuses the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

# The vendor page: "It will be valid for 1 day."
DEFAULT_TOKEN_LIFETIME_S = 86400.0
# Log in again this long before exp at most (CONTRACT §1: "within a minute of its exp").
MAX_REFRESH_MARGIN_S = 60.0


@dataclass(frozen=True)
class TokenTimes:
    """The ``iat`` and ``exp`` claims of a token, epoch seconds (``None`` when absent)."""

    iat: float | None
    exp: float | None


def token_times(token: str) -> TokenTimes:
    """Read ``iat``/``exp`` from a JWT's payload without verifying it.

    A token that is not a JWT (or lacks the claims) yields ``None`` for what is missing:
    an opaque token is still usable, and a 401 tells us when it stops being so.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return TokenTimes(None, None)
    payload = parts[1]
    try:
        raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return TokenTimes(None, None)
    if not isinstance(claims, dict):
        return TokenTimes(None, None)
    return TokenTimes(_num(claims.get("iat")), _num(claims.get("exp")))


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    f = float(value)
    return f if math.isfinite(f) else None


def refresh_at(times: TokenTimes, logged_in_at: float) -> float:
    """When (local epoch seconds) to log in again, given a token obtained at ``logged_in_at``.

    Refresh within ``min(60 s, half the lifetime)`` of expiry. With both claims, the lifetime
    ``exp - iat`` is laid on our own clock so a skewed server clock cannot make every call
    log in again; with ``exp`` alone it is taken as is; with neither, the vendor's one day.
    """
    if times.exp is not None and times.iat is not None and times.exp > times.iat:
        lifetime = times.exp - times.iat
    elif times.exp is not None:
        lifetime = times.exp - logged_in_at
        if lifetime <= 0:
            # already expired by our clock: use it once, the server decides (401 -> login)
            return logged_in_at
    else:
        lifetime = DEFAULT_TOKEN_LIFETIME_S
    margin = min(MAX_REFRESH_MARGIN_S, lifetime / 2)
    return logged_in_at + lifetime - margin


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP-date.

    ``None`` when absent or unreadable; never negative.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    ref = now or datetime.now(UTC)
    return max(0.0, (when - ref).total_seconds())


def backoff_s(attempt: int, base_s: float, unit_random: float, cap_s: float = 60.0) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based).

    ``unit_random`` in ``[0, 1)`` makes it deterministic under test.
    """
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 30))
    return max(0.0, unit_random) * ceiling
