"""The retry policy of the client (CONTRACT §1 "Faults to survive"), pure.

Worth another attempt (:class:`Retry`): a timeout, a refused or reset connection, an answer
cut mid-body, HTTP 429 and 5xx (:func:`retryable_status`). Everything else fails at once.
Waits honour ``Retry-After`` when the server sends one, else full-jitter exponential backoff
capped at :data:`BACKOFF_CAP_S`; attempts are bounded by ``max_attempts`` and by
``retry_max_total_s`` of elapsed plus planned waiting per call (:class:`RetryPolicy`), and
by ``run_max_retries`` retries and ``run_retry_budget_s`` seconds of waiting for all the
calls of a run together (:class:`RunBudget`): windows in flight share one budget, so an API
that is down fails the run once instead of every window retrying on its own.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from powerflex_etl.errors import RetryableApiError, RetryBudgetSpent
from powerflex_etl.settings import Settings

# the longest backoff between two attempts, whatever the attempt number
BACKOFF_CAP_S = 60.0


class Retry(Exception):
    """One attempt failed in a way that trying again can help."""

    def __init__(self, reason: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.retry_after = retry_after


def retryable_status(status: int) -> bool:
    """Whether an HTTP status is worth another attempt: 429 (rate limited) and 5xx."""
    return status == 429 or status >= 500


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


def backoff_s(
    attempt: int, base_s: float, unit_random: float, cap_s: float = BACKOFF_CAP_S
) -> float:
    """Full-jitter exponential backoff before retry number ``attempt`` (1-based).

    ``unit_random`` in ``[0, 1)`` makes it deterministic under test.
    """
    ceiling = min(cap_s, base_s * 2.0 ** min(attempt - 1, 30))
    return max(0.0, unit_random) * ceiling


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to try one call."""

    max_attempts: int
    backoff_base_s: float
    max_total_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy the settings ask for (``POWERFLEX_MAX_ATTEMPTS`` and friends)."""
        return cls(settings.max_attempts, settings.retry_backoff_s, settings.retry_max_total_s)

    def next_wait(
        self, attempts: int, failure: Retry, spent_s: float, rand: Callable[[], float]
    ) -> float | None:
        """Seconds to wait before another attempt after ``attempts`` failed ones, or None to
        give up. ``spent_s`` is the time the call has taken so far; ``rand`` gives ``[0, 1)``
        for the jitter and is called only when a backoff is computed.
        """
        if attempts >= self.max_attempts:
            return None
        wait = failure.retry_after
        if wait is None:
            wait = backoff_s(attempts, self.backoff_base_s, rand())
        if spent_s + wait > self.max_total_s:
            return None
        return wait


class RunBudget:
    """The retries all the calls of one run may still make, in number and in seconds waited.

    Thread-safe: the windows in flight draw on it together.
    """

    def __init__(self, max_retries: int, max_wait_s: float) -> None:
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self.retries = 0
        self.waited_s = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> RunBudget:
        """The budget the settings ask for (``POWERFLEX_RUN_MAX_RETRIES`` and friends)."""
        return cls(settings.run_max_retries, settings.run_retry_budget_s)

    def take(self, wait_s: float) -> bool:
        """Spend one retry waiting ``wait_s``; False (nothing spent) when it would overdraw."""
        with self._lock:
            if self.retries >= self.max_retries or self.waited_s + wait_s > self.max_wait_s:
                return False
            self.retries += 1
            self.waited_s += wait_s
            return True


def gave_up(
    label: str, endpoint: str, last: Retry, attempts: int, *, budget: RunBudget | None = None
) -> RetryableApiError:
    """The error for a call whose retries ran out, naming the call and its last failure.

    With ``budget`` (the run's budget was what ran out), a :class:`RetryBudgetSpent`, which
    ends the run.
    """
    status = f" (last status {last.status})" if last.status else ""
    kind: type[RetryableApiError] = RetryableApiError
    if budget is not None:
        spent = f"the run's {budget.retries} retries ({budget.waited_s:.0f} s) are spent"
        message = f"{label}: {last.reason}{status}; gave up after {attempts} attempt(s): {spent}"
        kind = RetryBudgetSpent
    else:
        message = f"{label}: {last.reason}{status}; gave up after {attempts} attempt(s)"
    return kind(
        message,
        endpoint=endpoint,
        status=last.status,
        retry_after=last.retry_after,
        hint=_hint(last, budget),
    )


def _hint(last: Retry, budget: RunBudget | None) -> str:
    if last.reason.startswith("connection to"):
        # nothing answered at all: the address is the likelier culprit than the load
        return "check POWERFLEX_BASE_URL and that the API is reachable from here"
    if budget is not None:
        return RetryBudgetSpent.hint
    return (
        "the API kept failing; try again later, or raise POWERFLEX_MAX_ATTEMPTS / "
        "POWERFLEX_RETRY_MAX_TOTAL_S"
    )
