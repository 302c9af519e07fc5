"""HTTP only: the session, the call loop, one typed method per PowerFlex endpoint (CONTRACT §1).

The call loop logs in (:mod:`.auth` says when again), retries as :mod:`.retry` decides, and
checks bodies with :mod:`.checks` before sending.

One :class:`PowerflexClient` is shared by many threads (parallel windows) and serves one run:
its token (:mod:`.token`), its retry budget (:class:`~.retry.RunBudget`) and its
:meth:`~PowerflexClient.abort` are the run's. Each process builds its own from
:class:`~powerflex_etl.settings.Settings` (a client is never pickled).
Answers of ``/get_measurement_data`` are returned as raw bytes (``get_measurement_answer``: the
``bytearray`` they were read into, which the parser works in without a copy); the parser
decodes them once.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.client import HTTPException
from typing import Any, Literal, NoReturn

import requests
import urllib3.exceptions
from pydantic import SecretStr
from requests.adapters import HTTPAdapter

from powerflex_etl.api.auth import refresh_at, token_times
from powerflex_etl.api.checks import acc_path, check_months, check_schedule, check_signal
from powerflex_etl.api.retry import (
    Retry,
    RetryPolicy,
    RunBudget,
    gave_up,
    parse_retry_after,
    retryable_status,
)
from powerflex_etl.api.token import Issued, Lease, SharedToken
from powerflex_etl.errors import (
    AnswerTooLargeError,
    AuthError,
    ConfigError,
    FatalApiError,
    PowerflexError,
    RunCancelledError,
    TLSVerificationError,
    register_secret,
)
from powerflex_etl.schemas import MEASUREMENTS
from powerflex_etl.settings import Settings
from powerflex_etl.windows import Window

log = logging.getLogger(__name__)

# connections kept per host: enough for a backfill's parallel windows
POOL_SIZE = 16
_CHUNK = 1 << 20
# error bodies are read only this far: they are for a one-line message
_ERROR_BODY_LIMIT = 64 * 1024
# login and DCM answers are a few hundred bytes; anything this big is not one of them
_SMALL_ANSWER_LIMIT = 16 * 1024**2
# a call logs in again at most MAX_LOGINS_PER_CALL times itself: a server that keeps
# refusing fresh tokens gets a few logins, not a storm. Replays with a token someone else
# renewed cost no login; their bound is only a safety net (threads racing for the few uses
# of a short-lived token can each lose a few rounds)
MAX_REPLAYS_PER_CALL = 100
MAX_LOGINS_PER_CALL = 3


class ClientNotPicklableError(ConfigError, TypeError):
    """A :class:`PowerflexClient` holds a session, a lock and a token: it cannot travel."""


class _Unauthorized(Exception):
    """The server answered 401 to a call that carried a token."""


class PowerflexClient:
    """Thread-safe client; never pickled (each process builds its own from Settings).

    ``sleep`` (for backoff and ``Retry-After``), ``clock`` (epoch seconds, for token expiry)
    and ``rand`` (``[0, 1)``, for jitter) are injectable so tests need not wait.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not settings.base_url:
            # the API has no public default address: retrying a placeholder helps no one
            raise ConfigError(
                "no API base URL is configured",
                hint="set POWERFLEX_BASE_URL or pass --base-url, e.g. https://<host>:9443",
            )
        self.settings = settings
        self._base = settings.base_url.rstrip("/")
        self._timeout = (settings.connect_timeout_s, settings.read_timeout_s)
        self._sleep = sleep
        self._clock = clock
        self._rand = rand
        # model_copy(update=...) skips validation and may leave a plain str here
        pw = settings.password
        self._password = pw.get_secret_value() if isinstance(pw, SecretStr) else str(pw)
        register_secret(self._password)
        self._tokens = SharedToken(self._issue, clock)
        self._budget = RunBudget.from_settings(settings)
        self._aborted: PowerflexError | None = None
        if not settings.verify_tls:
            # the user turned verification off on purpose: say so once, not on every request
            log.warning("TLS certificate verification is off for %s", self._base)
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)
        self._session = requests.Session()
        adapter = HTTPAdapter(pool_connections=POOL_SIZE, pool_maxsize=POOL_SIZE, max_retries=0)
        self._session.mount("https://", adapter)
        self._session.mount("http://", adapter)

    # -- pickling: refuse, with what to do instead -------------------------------------------

    def __reduce__(self) -> NoReturn:
        raise ClientNotPicklableError(
            "a PowerflexClient cannot be pickled or sent to another process",
            hint="build one per process with PowerflexClient(Settings(...))",
        )

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        self.__reduce__()

    def __getstate__(self) -> NoReturn:
        self.__reduce__()

    def __enter__(self) -> PowerflexClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close pooled connections; the client must not be used afterwards."""
        self._session.close()

    # -- auth ---------------------------------------------------------------------------------

    def login(self) -> None:
        """Log in now (``POST /login``), replacing any token held."""
        self._tokens.renew()

    def login_check(self) -> datetime | None:
        """Log in and return when the new token expires (``None`` if it carries no ``exp``)."""
        self.login()
        exp = self._tokens.expires_at
        return datetime.fromtimestamp(exp, UTC) if exp is not None else None

    def ensure_login(self) -> None:
        """Log in unless a token is held: a run's first call, made before any window starts.

        Wrong credentials or an unreachable API fail here once, with one line, instead of
        in every window.
        """
        self._tokens.lease()

    @property
    def logins(self) -> int:
        """How many logins this client attempted."""
        return self._tokens.logins

    def abort(self, reason: PowerflexError) -> None:
        """Refuse every later call: the run is stopping because of ``reason``.

        Calls already on the wire finish; the next attempt of any call raises
        :class:`RunCancelledError`.
        """
        self._aborted = reason

    def _issue(self) -> Issued:
        """``POST /login`` (called by :class:`SharedToken`, one thread at a time)."""
        if not self.settings.username:
            raise ConfigError("no username to log in with", hint="set POWERFLEX_USERNAME")
        if not self._password:
            raise ConfigError("no password to log in with", hint="set POWERFLEX_PASSWORD")
        body = self._call(
            "POST",
            "/login",
            {"username": self.settings.username, "password": self._password},
            auth=False,
        )
        try:
            token = json.loads(body)["access_token"]
        except (ValueError, KeyError, TypeError):
            token = None
        if not isinstance(token, str) or not token:
            # never echo the body: it may hold the token or the credentials
            raise AuthError(f"/login at {self._base}: the answer carries no access_token")
        register_secret(token)
        times = token_times(token)
        issued = Issued(token, refresh_at(times, self._clock()), times.exp)
        log.info(
            "logged in to %s as %s; next login after %s",
            self._base,
            self.settings.username,
            datetime.fromtimestamp(issued.refresh_at, UTC).isoformat(timespec="seconds"),
        )
        return issued

    # -- the call loop: auth replay, retries, backoff ----------------------------------------

    def _call(
        self,
        method: str,
        endpoint: str,
        body: Mapping[str, Any] | None,
        *,
        auth: bool = True,
        context: str = "",
        limit: int | None = None,
    ) -> bytearray:
        label = f"{endpoint} {context}".strip()
        policy = RetryPolicy.from_settings(self.settings)
        started = time.monotonic()
        waited = 0.0
        attempts = 0
        replays = logins = 0
        while True:
            attempts += 1
            lease = self._tokens.lease() if auth else None
            try:
                return self._attempt(method, endpoint, body, lease, label, limit)
            except _Unauthorized:
                assert lease is not None
                attempts -= 1  # a replay after a 401 is not a retry
                replays += 1
                logins += self._replay_after_401(lease, label, replays, logins)
                continue
            except Retry as failure:
                last = failure
            # injected sleeps do not pass time: count what was asked as well as what passed
            spent = max(time.monotonic() - started, waited)
            wait = policy.next_wait(attempts, last, spent, self._rand)
            if wait is None:
                raise gave_up(label, endpoint, last, attempts)
            if not self._budget.take(wait):
                raise gave_up(label, endpoint, last, attempts, budget=self._budget)
            log.warning(
                "%s: %s; retry %d/%d in %.2f s",
                label,
                last.reason,
                attempts,
                policy.max_attempts - 1,
                wait,
            )
            self._sleep(wait)
            waited += wait

    def _replay_after_401(self, lease: Lease, label: str, replays: int, logins: int) -> int:
        """Decide what a 401 calls for; returns the logins it made (0 or 1), or raises."""
        if replays > MAX_REPLAYS_PER_CALL:
            raise AuthError(f"{label}: token refused (HTTP 401) {replays} times in one call")
        if self._tokens.refused(lease, label=label, may_login=logins < MAX_LOGINS_PER_CALL):
            log.info("%s: HTTP 401, logged in again; replaying", label)
            return 1
        log.debug("%s: HTTP 401 for a token already replaced; replaying", label)
        return 0

    def _attempt(
        self,
        method: str,
        endpoint: str,
        body: Mapping[str, Any] | None,
        lease: Lease | None,
        label: str,
        limit: int | None,
    ) -> bytearray:
        """One request; tells the token holder about the lease's fate as soon as it is known.

        Every lease is answered here, whatever happens (other threads may wait for it).
        """
        if lease is None:
            self._check_aborted(label)
            return self._request(method, endpoint, body, None, label, limit)
        told = False

        def on_status(status: int) -> None:
            # the status, not the body, says whether the token was taken: others waiting
            # on that need not wait for a long answer to stream in
            nonlocal told
            told = True
            self._tokens.answered(lease, accepted=status < 300)

        try:
            self._check_aborted(label)
            return self._request(method, endpoint, body, lease.token, label, limit, on_status)
        finally:
            if not told:  # no status at all (timeout, reset): it says nothing of the token
                self._tokens.answered(lease, accepted=False)

    def _check_aborted(self, label: str) -> None:
        if self._aborted is not None:
            raise RunCancelledError(f"{label}: not sent, the run is stopping")

    def _request(
        self,
        method: str,
        endpoint: str,
        body: Mapping[str, Any] | None,
        token: str | None,
        label: str,
        limit: int | None,
        on_status: Callable[[int], None] | None = None,
    ) -> bytearray:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        try:
            resp = self._session.request(
                method,
                self._base + endpoint,
                json=body,
                headers=headers,
                timeout=self._timeout,
                verify=self.settings.verify_tls,
                stream=True,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as err:
            self._tls_failure(label, err)
        except requests.exceptions.Timeout:
            raise Retry("timed out")
        except requests.exceptions.ConnectionError as err:
            raise Retry(f"connection to {self._base} failed ({_conn_reason(err)})")
        except requests.exceptions.RequestException as err:
            raise FatalApiError(f"{label}: bad request to {self._base}: {_short(err)}")
        with resp:
            status = resp.status_code
            if on_status is not None:
                on_status(status)
            if endpoint == "/login" and status in (400, 401, 403):
                # the text of a refused login is never shown: it may echo the credentials
                raise AuthError(
                    f"/login at {self._base} refused for user {self.settings.username!r} "
                    f"(HTTP {status})",
                    endpoint=endpoint,
                    status=status,
                )
            if status == 401 and token is not None:
                raise _Unauthorized()
            if retryable_status(status):
                raise Retry(
                    f"HTTP {status}", status, parse_retry_after(resp.headers.get("Retry-After"))
                )
            if status >= 300:
                text = "" if endpoint == "/login" else _error_text(resp)
                raise FatalApiError(
                    f"{label}: HTTP {status} {resp.reason or ''}: {text}".rstrip(": "),
                    endpoint=endpoint,
                    status=status,
                )
            return self._read_body(resp, label, endpoint, limit or _SMALL_ANSWER_LIMIT)

    def _read_body(
        self, resp: requests.Response, label: str, endpoint: str, limit: int
    ) -> bytearray:
        declared = _declared_length(resp)
        if declared is not None and declared > limit:
            raise self._too_large(label, endpoint, limit)
        # a bytearray, handed over as it is (get_measurement_answer): the parser works in it
        # rather than copying a 30 MB series, and puts it back as it was. Sized once when
        # the length is declared: grown chunk by chunk, a 30 MB answer would move into
        # fresh pages several times over
        buf = bytearray(declared or 0)
        got = 0
        try:
            for chunk in resp.iter_content(chunk_size=_CHUNK):
                end = got + len(chunk)
                if end > limit:
                    raise self._too_large(label, endpoint, limit)
                buf[got:end] = chunk  # past the declared end (or with none) this appends
                got = end
        except (requests.exceptions.Timeout, urllib3.exceptions.ReadTimeoutError):
            raise Retry("timed out reading the answer", resp.status_code)
        except (
            requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError,
            HTTPException,
            OSError,
        ) as err:
            # requests reports a read timeout mid-body as a ConnectionError
            if "timed out" in str(err).lower():
                raise Retry("timed out reading the answer", resp.status_code)
            raise Retry(f"truncated answer ({_conn_reason(err)})", resp.status_code)
        if declared is not None and got != declared:
            raise Retry(f"truncated answer ({got} of {declared} bytes)", resp.status_code)
        return buf

    def _too_large(self, label: str, endpoint: str, limit: int) -> AnswerTooLargeError:
        return AnswerTooLargeError(
            f"{label}: answer larger than {limit} bytes (POWERFLEX_MAX_ANSWER_BYTES)",
            endpoint=endpoint,
        )

    def _tls_failure(self, label: str, err: Exception) -> NoReturn:
        text = str(err)
        found = re.search(r"certificate verify failed[^'\")\]]*", text)
        if found:
            raise TLSVerificationError(
                f"{label}: TLS certificate of {self._base} did not verify: {found.group(0)}"
            )
        raise FatalApiError(
            f"{label}: TLS handshake with {self._base} failed ({_short(err)})",
            hint="check that POWERFLEX_BASE_URL uses the right scheme and port",
        )

    def _json(self, method: str, endpoint: str, body: Mapping[str, Any] | None) -> Any:
        raw = self._call(method, endpoint, body)
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError:
            raise FatalApiError(f"{endpoint}: the answer is not JSON", endpoint=endpoint)

    def _json_dict(
        self, method: str, endpoint: str, body: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        answer = self._json(method, endpoint, body)
        if not isinstance(answer, dict):
            raise FatalApiError(
                f"{endpoint}: expected a JSON object, got {type(answer).__name__}",
                endpoint=endpoint,
            )
        return answer

    # -- endpoints ----------------------------------------------------------------------------

    def get_measurement_data(self, measurement: str, start: datetime, end: datetime) -> bytes:
        """The raw answer body for ``start <= time < end`` (not decoded here), as bytes.

        Raises :class:`AnswerTooLargeError` past ``max_answer_bytes``, and a
        :class:`RetryableApiError` naming the measurement and window when retries run out.
        """
        return bytes(self.get_measurement_answer(measurement, start, end))

    def get_measurement_answer(self, measurement: str, start: datetime, end: datetime) -> bytearray:
        """:meth:`get_measurement_data` as the buffer it was read into, without a copy.

        What ingestion parses: ``parse_answer`` works in a ``bytearray`` instead of copying
        the answer's rows (and gives it back unchanged).
        """
        if measurement not in MEASUREMENTS:
            raise ConfigError(
                f"unknown measurement {measurement!r}", hint=f"use one of {', '.join(MEASUREMENTS)}"
            )
        window = Window(start, end)
        start_s, end_s = window.epoch_s
        body = {"measurement": measurement, self.settings.window_key: [start_s, end_s]}
        return self._call(
            "POST",
            "/get_measurement_data",
            body,
            context=f"{measurement} {window}",
            limit=self.settings.max_answer_bytes,
        )

    def get_external_signal(self, acc_id: str | int, name: str | None = None) -> dict[str, Any]:
        """All external signals of a site (``{name: signal}``), or the one named."""
        body: dict[str, Any] = {} if name is None else {"name": name}
        return self._json_dict("POST", f"/get_external_signal/{acc_path(acc_id)}", body)

    def set_external_signal(
        self,
        acc_id: str | int,
        *,
        name: str,
        max_load: float,
        max_load_unit: Literal["kW", "A"],
        is_enabled: bool,
    ) -> dict[str, Any]:
        """Create or change an external signal; the API answers with the signal."""
        body = check_signal(name, max_load, max_load_unit, is_enabled)
        return self._json_dict("POST", f"/set_external_signal/{acc_path(acc_id)}", body)

    def set_real_time_load(self, acc_id: str | int, kw: int) -> dict[str, Any]:
        """Report the site's real-time load in whole kW."""
        if isinstance(kw, bool) or not isinstance(kw, int):
            raise ConfigError(f"real-time load must be a whole number of kW, not {kw!r}")
        return self._json_dict(
            "POST", f"/set_real_time_load/{acc_path(acc_id)}", {"real_time_load_kW": kw}
        )

    def get_target_peak_power(self, acc_id: str | int) -> dict[str, int]:
        """The target peak power in kW for each month (``{"Jan": 200, ...}``)."""
        return self._json_dict("GET", f"/get_target_peak_power_kW/{acc_path(acc_id)}", None)

    def set_target_peak_power(self, acc_id: str | int, months: Mapping[str, int]) -> dict[str, int]:
        """Set the target peak power of some months; the API answers with all twelve."""
        body = {"target_peak_power": check_months(months)}
        return self._json_dict("POST", f"/set_target_peak_power_kW/{acc_path(acc_id)}", body)

    def set_max_power_schedule(
        self, acc_id: str | int, schedule: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Send a max-power schedule (seen in live clients only; see CONTRACT §1)."""
        body = check_schedule(schedule)
        return self._json_dict("POST", f"/set_max_power_schedule/{acc_path(acc_id)}", body)


def _declared_length(resp: requests.Response) -> int | None:
    # With a Content-Encoding the header counts encoded bytes, not the ones we hold.
    if resp.headers.get("Content-Encoding", "identity").lower() != "identity":
        return None
    value = resp.headers.get("Content-Length", "")
    return int(value) if value.isascii() and value.isdigit() else None


def _error_text(resp: requests.Response) -> str:
    try:
        raw = resp.raw.read(_ERROR_BODY_LIMIT, decode_content=True) or b""
    except Exception:  # the status line already says what failed
        return ""
    text = raw.decode("utf-8", "replace")
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        for key in ("error", "message", "msg", "detail", "description"):
            if doc.get(key):
                text = str(doc[key])
                break
    return _short(text, 300)


def _conn_reason(err: BaseException) -> str:
    # requests nests urllib3's reason several layers deep; the errno text is what helps
    text = str(err)
    found = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    if found:
        return found.group(1).strip()
    for needle, reason in (
        ("RemoteDisconnected", "server closed the connection without answering"),
        ("IncompleteRead", "connection closed mid-answer"),
        ("InvalidChunkLength", "connection closed mid-answer"),
        ("Connection reset", "connection reset"),
        ("Connection broken", "connection closed mid-answer"),
    ):
        if needle in text:
            return reason
    return _short(text, 120)


def _short(err: object, limit: int = 200) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
