"""Pure: when the client must log in again — a JWT's claims and the refresh deadline.

The token's signature is never checked: the client only needs to know when to log in
again, and the server is the one that trusts or refuses the token.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass

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
