"""The one token every thread of a client shares, and when a refused token means "log in again".

Servers revoke tokens early: after a few uses, or when the same account logs in elsewhere.
With several windows in flight, the 401s for one revoked token arrive in a burst; the rules
here turn that burst into one login, not one per thread, and never into a failed run:

- one login at a time (a lock), and its token is handed to every thread (:meth:`lease`);
- a 401 for a token that is no longer the current one logs in no one: someone already did,
  and the call replays with the current token (:meth:`refused`);
- a 401 for the current token logs in again. The call that logged in makes the new token's
  first use, and the other threads wait for that answer's status before they use it: a
  token that its own first use cannot get accepted is refused by the server as issued, more
  logins cannot help (:class:`AuthError`, the credentials line); and the call that paid for
  the login is not starved by its siblings using the new token up before it;
- a login refused for bad credentials is remembered: the run never asks again (a wrong
  password must not hammer the account until it locks).

Every lease is answered exactly once (:meth:`answered`), with whether the server took it.
HTTP stays in the client: this module is given the login function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from powerflex_etl.errors import AuthError


@dataclass(frozen=True)
class Issued:
    """What a login gave: the token and when (local epoch seconds) to log in again."""

    token: str
    refresh_at: float
    expires_at: float | None


@dataclass(frozen=True)
class Lease:
    """The token one call carries, which login issued it, and whether it is its first use."""

    token: str
    serial: int
    first_use: bool = False


class SharedToken:
    """Thread-safe holder of a client's token; ``login`` performs ``POST /login``."""

    def __init__(self, login: Callable[[], Issued], clock: Callable[[], float]) -> None:
        self._login = login
        self._clock = clock
        self._cond = threading.Condition()
        self._issued: Issued | None = None
        self._serial = 0
        # has the server accepted the current token at least once?
        self._accepted = False
        # was the current token issued because the one before it was refused?
        self._after_refusal = False
        # that token's first use: which thread makes it, and whether its status is still out
        self._probe_owner: int | None = None
        self._probing = False
        self._refused_login: AuthError | None = None
        #: logins attempted, for tests and the run's log
        self.logins = 0

    @property
    def token(self) -> str | None:
        """The current token, if any (never log it)."""
        issued = self._issued
        return issued.token if issued else None

    @property
    def expires_at(self) -> float | None:
        """The current token's ``exp`` claim, if it has one."""
        issued = self._issued
        return issued.expires_at if issued else None

    def lease(self) -> Lease:
        """The token to send now, logging in first when there is none or it is due.

        While a token issued after a refusal awaits its first use's status, only the thread
        that logged in gets it; the others wait here for the verdict.
        """
        me = threading.get_ident()
        with self._cond:
            self._cond.wait_for(lambda: not self._probing or self._probe_owner == me)
            if self._probing:  # this thread logged in: its call makes the first use
                self._probe_owner = None
                assert self._issued is not None
                return Lease(self._issued.token, self._serial, first_use=True)
            if self._issued is None or self._clock() >= self._issued.refresh_at:
                self._login_locked(after_refusal=False)
            assert self._issued is not None
            return Lease(self._issued.token, self._serial)

    def renew(self) -> None:
        """Log in now, replacing the token held (``PowerflexClient.login``)."""
        with self._cond:
            self._login_locked(after_refusal=False)

    def answered(self, lease: Lease, *, accepted: bool) -> None:
        """The call carrying ``lease`` has its status, or failed without one; call exactly
        once per :meth:`lease`. ``accepted``: the server took the token (a 2xx)."""
        with self._cond:
            if lease.serial != self._serial:
                return
            self._accepted = self._accepted or accepted
            if lease.first_use:
                self._probing = False
                self._cond.notify_all()

    def refused(self, lease: Lease, *, label: str, may_login: bool) -> bool:
        """The server answered 401 to ``lease`` (already :meth:`answered`); returns whether
        this logged in again (then this thread's next :meth:`lease` is the first use).

        Raises :class:`AuthError` when the current token was issued after a refusal and
        was never accepted, or when a login is needed and ``may_login`` is false.
        """
        with self._cond:
            if lease.serial != self._serial or lease.token != self.token:
                return False  # already replaced: replay with the current token
            if self._after_refusal and not self._accepted:
                raise AuthError(f"{label}: token refused (HTTP 401) even after a fresh login")
            if not may_login:
                raise AuthError(
                    f"{label}: token refused (HTTP 401) again and again, even after fresh "
                    "logins (is another process logging in with the same account?)"
                )
            self._login_locked(after_refusal=True)
            self._probing = True
            self._probe_owner = threading.get_ident()
            return True

    def _login_locked(self, *, after_refusal: bool) -> None:
        if self._refused_login is not None:
            # a new instance per raise: threads must not share one traceback
            first = self._refused_login
            raise AuthError(str(first), endpoint=first.endpoint, status=first.status)
        self.logins += 1
        try:
            issued = self._login()
        except AuthError as err:
            # refused credentials stay refused for this run: never send them again
            self._refused_login = err
            raise
        self._issued = issued
        self._serial += 1
        self._accepted = False
        self._after_refusal = after_refusal
        self._probing = False
        self._probe_owner = None
        self._cond.notify_all()
