"""One error hierarchy for the whole library.

Every error the library raises derives from :class:`PowerflexError`. API errors say
whether retrying can help (:class:`RetryableApiError`) or not (:class:`FatalApiError`),
and every error says whether it ends the whole run (``stops_run``: bad credentials, a 403,
bad settings, a spent retry budget fail every window alike, so no window should try).
Messages name what failed (endpoint, measurement, window) and never carry secrets:
use :func:`redact` on any text that might hold one.
"""

from __future__ import annotations

import re

_SECRET_PATTERNS = [
    # JWTs: three base64url segments
    re.compile(r"eyJ[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}\.[A-Za-z0-9_\-]{4,}"),
    re.compile(r"(?i)(bearer\s+)[^\s\"']+"),
    re.compile(r"(?i)(\"?password\"?\s*[:=]\s*\"?)[^\s\",}]+"),
    re.compile(r"(?i)(\"?access_token\"?\s*[:=]\s*\"?)[^\s\",}]+"),
]

_extra_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value (password, token) so :func:`redact` scrubs it everywhere."""
    if value and len(value) >= 4:
        _extra_secrets.add(value)


def redact(text: str) -> str:
    """Scrub tokens, passwords and registered secrets from ``text``."""
    for secret in _extra_secrets:
        if secret in text:
            text = text.replace(secret, "***")
    for pat in _SECRET_PATTERNS:
        if pat.groups:
            text = pat.sub(lambda m: m.group(1) + "***", text)
        else:
            text = pat.sub("***", text)
    return text


class PowerflexError(Exception):
    """Root of every error this library raises. ``str(err)`` is one redacted line."""

    hint: str = ""
    #: the same failure awaits every other window of the run: stop it instead of trying them
    stops_run: bool = False

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        message = redact(" ".join(str(message).split()))
        super().__init__(message)
        if hint is not None:
            self.hint = hint

    def one_line(self) -> str:
        """The message plus what to do, on one line, for the CLI."""
        msg = str(self)
        return f"{msg} ({self.hint})" if self.hint else msg


class ConfigError(PowerflexError):
    """Bad settings or arguments; fix the input and run again."""

    stops_run = True


class ApiError(PowerflexError):
    """The PowerFlex API could not answer a call."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        endpoint: str = "",
        status: int | None = None,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.endpoint = endpoint
        self.status = status
        self.retry_after = retry_after
        if status == 403:
            # forbidden for this account: every other call of the run would be refused too
            self.stops_run = True
            if hint is None and not self.hint:
                self.hint = "this account may not make that call; check its access with PowerFlex"


class RetryableApiError(ApiError):
    """5xx, 429, timeouts, reset connections: trying again later can help."""

    retryable = True


class RetryBudgetSpent(RetryableApiError):
    """The run has spent the retries it may make in all: the API is down, not blinking."""

    # later, yes; within this run, no: every window would fail the same way at once
    retryable = False
    stops_run = True
    hint = (
        "the API kept failing; try again later, or raise POWERFLEX_RUN_MAX_RETRIES / "
        "POWERFLEX_RUN_RETRY_BUDGET_S"
    )


class RunCancelledError(PowerflexError):
    """A call not made because the run is stopping after a failure that ends it."""


class FatalApiError(ApiError):
    """4xx other than 401/429, bad requests: retrying the same call cannot help."""


class AuthError(FatalApiError):
    """Login refused or the token was rejected after a fresh login."""

    hint = "check POWERFLEX_USERNAME / POWERFLEX_PASSWORD"
    stops_run = True


class TLSVerificationError(FatalApiError):
    """The server's certificate did not verify."""

    hint = (
        "fix the certificate, point REQUESTS_CA_BUNDLE at its CA, or set POWERFLEX_VERIFY_TLS=false"
    )
    stops_run = True


class AnswerTooLargeError(ApiError):
    """An answer exceeded the configured size limit (``POWERFLEX_MAX_ANSWER_BYTES``)."""

    retryable = False
    hint = "use a smaller window (--window-hours) or raise POWERFLEX_MAX_ANSWER_BYTES"


class ParseError(PowerflexError):
    """An answer could not be read as InfluxDB 1.7 JSON (malformed, truncated, wrong shape)."""

    def __init__(self, message: str, *, measurement: str = "", hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.measurement = measurement


class AnswerErrorReported(ParseError):
    """The answer itself reported an error (statement-level or top-level ``error``)."""


class PartialAnswerError(ParseError):
    """InfluxDB cut the answer (a final ``partial: true``): the window must be split."""

    hint = "the answer was cut by the server's row limit; use a smaller window"


class LakeError(PowerflexError):
    """The lake could not be read or written."""


class LakeLocationError(LakeError):
    """The lake's path cannot hold a lake (it, or a folder above it, is a file)."""

    hint = "pass --lake or POWERFLEX_LAKE a directory, or a path that does not exist yet"
    stops_run = True


class LockError(LakeError):
    """Another writer holds the lake's lock for this measurement."""

    hint = "another ingest is writing this measurement; wait for it or check `state show`"


class EngineError(PowerflexError):
    """The engine that runs the windows (Prefect, Dask) could not start or broke down."""

    stops_run = True


class WindowError(PowerflexError):
    """One (measurement, window) could not be ingested; nothing of it was committed.

    Wraps the cause so the message names the measurement and window once, and keeps
    whether retrying can help.
    """

    def __init__(self, measurement: str, window: object, cause: BaseException) -> None:
        hint = getattr(cause, "hint", "") or None
        super().__init__(f"{measurement} {window}: {cause}", hint=hint)
        self.measurement = measurement
        self.window = window
        self.cause = cause
        self.retryable = bool(getattr(cause, "retryable", False))
        self.stops_run = bool(getattr(cause, "stops_run", False))

    def __reduce__(self) -> tuple[object, ...]:
        # picklable across Prefect/Dask workers
        return (WindowError, (self.measurement, self.window, self.cause))


def is_retryable(err: BaseException) -> bool:
    """Whether running the same step again later can help: the one retry predicate.

    True only for a library error marked retryable (5xx, 429, timeouts after the client's
    own retries; a :class:`WindowError` carries its cause's marker); anything else (bad
    answers, bad settings, bugs) fails the same way on every attempt; so does an error
    that stops the run.
    """
    return (
        isinstance(err, PowerflexError)
        and bool(getattr(err, "retryable", False))
        and not stops_run(err)
    )


def stops_run(err: BaseException) -> bool:
    """Whether ``err`` ends the whole run: the same failure awaits every other window.

    Bad credentials or a token refused after a fresh login, a 403, an unverifiable
    certificate, bad settings, a lake path that cannot hold a lake, a spent retry budget.
    """
    return isinstance(err, PowerflexError) and bool(getattr(err, "stops_run", False))
