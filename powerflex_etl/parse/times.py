"""Pure: InfluxDB ``time`` cells (epoch seconds or RFC 3339 strings) -> µs since the epoch.

Vectorised for the common cases (all numbers, all strings); a per-value path handles the
rest. Every path gives the same answer for the same cell, so a row's time never depends on
which other rows came with it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Accepted range: years 0001..9999, what Python's datetime and Parquet readers can show.
MIN_US = -62_135_596_800 * 1_000_000
MAX_US = 253_402_300_800 * 1_000_000  # exclusive: 10000-01-01T00:00:00Z
_MIN_S = MIN_US / 1e6
_MAX_S = MAX_US / 1e6

NO_TIME = "no time"
BAD_TIME = "unparseable time"
OUT_OF_RANGE = "time out of range"

# RFC 3339 date-time with a mandatory offset; InfluxDB writes "...Z" with up to 9 digits.
_RFC3339 = (
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))$"
)
_RFC3339_RE = re.compile(_RFC3339)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass
class Times:
    """Parsed times of one column: ``us`` is meaningful only where ``reason`` is None."""

    us: np.ndarray  # int64
    reasons: list[str | None]

    @property
    def all_ok(self) -> bool:
        return not any(self.reasons)


def epoch_seconds_to_us(seconds: np.ndarray) -> np.ndarray:
    """Finite, in-range epoch seconds (float64) -> µs (int64), truncated toward -inf.

    Exact for the number as written when the JSON shows the float's shortest form (what
    every mainstream encoder writes), for ``|seconds| < 2**32`` (until 2106; beyond, a float
    cannot tell neighbouring µs apart): ``1566333668.123456`` gives ``...123456`` and a 7th
    digit is dropped, not rounded. The nearest µs ``u`` of ``seconds * 1e6`` is at most one
    above the true truncation; the written decimal lies below ``u / 1e6`` exactly when the
    float lies below the float nearest to ``u / 1e6`` (rounding is monotone).
    """
    nearest = np.rint(seconds * 1e6)
    below = seconds < nearest / 1e6
    return nearest.astype(np.int64) - below.astype(np.int64)


def _rfc3339_one(text: str) -> int | None:
    """One RFC 3339 string -> µs (truncated), or None when it is not a valid date-time."""
    m = _RFC3339_RE.match(text)
    if m is None:
        return None
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    if h > 23 or mi > 59 or s > 59:
        return None
    try:
        ordinal = date(y, mo, d).toordinal()
    except ValueError:
        return None
    offset = 0
    if m.group(9):
        oh, om = int(m.group(10)), int(m.group(11))
        if oh > 23 or om > 59:
            return None
        offset = (oh * 3600 + om * 60) * (1 if m.group(9) == "+" else -1)
    frac = (m.group(7) or "")[:6].ljust(6, "0")
    secs = (ordinal - _EPOCH_ORDINAL) * 86400 + h * 3600 + mi * 60 + s - offset
    return secs * 1_000_000 + int(frac)


def _range_reason(us: int) -> str | None:
    return None if MIN_US <= us < MAX_US else OUT_OF_RANGE


def _strings_to_us(texts: pa.Array) -> tuple[np.ndarray, list[str | None]] | None:
    """Fast path for a string array with no nulls: None when Arrow cannot take all of it."""
    if not pc.all(pc.match_substring_regex(texts, _RFC3339)).as_py():
        return None
    try:
        ns = pc.cast(texts, pa.timestamp("ns", tz="UTC"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    # floor division truncates toward -inf, like the per-value path
    us = ns.cast(pa.int64()).to_numpy(zero_copy_only=False) // 1000
    return us, [None] * len(texts)


def numbers_to_us(arr: pa.Array) -> tuple[np.ndarray, list[str | None]]:
    """Epoch seconds (a numeric Arrow array) -> (µs truncated, a reason per bad cell else None)."""
    seconds = arr.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
    null = arr.is_null().to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(seconds) & (seconds >= _MIN_S) & (seconds < _MAX_S)
    safe = np.where(ok, seconds, 0.0)
    us = epoch_seconds_to_us(safe)
    if ok.all():
        return us, [None] * len(us)
    reasons: list[str | None] = [None] * len(us)
    for i in np.flatnonzero(~ok).tolist():
        reasons[i] = NO_TIME if null[i] else OUT_OF_RANGE
    return us, reasons


def _one_to_us(value: object) -> tuple[int, str | None]:
    if value is None:
        return 0, NO_TIME
    if isinstance(value, bool):
        return 0, BAD_TIME
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:
            return 0, OUT_OF_RANGE
        if not (np.isfinite(seconds) and _MIN_S <= seconds < _MAX_S):
            return 0, OUT_OF_RANGE
        return int(epoch_seconds_to_us(np.array([seconds]))[0]), None
    if isinstance(value, str):
        us = _rfc3339_one(value)
        if us is None:
            return 0, BAD_TIME
        return us, _range_reason(us)
    return 0, BAD_TIME


def times_to_us(values: Sequence[object], *, no_bools: bool = False) -> Times:
    """Time cells as delivered (float, int, str, None, anything) -> :class:`Times`.

    Numbers are Unix epoch seconds; strings are RFC 3339 with an offset (converted to UTC).
    Both are truncated to µs. Anything else, or a time outside years 1..9999, gets a reason.
    ``no_bools`` promises the cells hold no booleans (typed decoding), skipping a scan.
    """
    n = len(values)
    if n == 0:
        return Times(np.zeros(0, dtype=np.int64), [])
    try:
        # Arrow would quietly turn True into 1.0; a boolean time must be a bad row
        if no_bools or not any(v is True or v is False for v in values):
            arr = pa.array(values, type=pa.float64())
            us, reasons = numbers_to_us(arr)
            return Times(us, reasons)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    try:
        texts = pa.array(values, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        texts = None
    if texts is not None and texts.null_count == 0:
        fast = _strings_to_us(texts)
        if fast is not None:
            us, reasons = fast
            return Times(us, reasons)
    out = np.zeros(n, dtype=np.int64)
    reasons = [None] * n
    for i, value in enumerate(values):
        out[i], reasons[i] = _one_to_us(value)
    return Times(out, reasons)
