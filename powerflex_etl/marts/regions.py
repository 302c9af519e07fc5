"""Pure: which stretch of each EVSE's telemetry a change can reach, so only that is recomputed.

A sample's session figures depend on its plug-in (its neighbours back to the unplugged
sample before, forward to the one after), on its minute and on its 6-hour slot
(``sessionize.py``). So when some slots change (*seeds*), everything outside the stretches
that run, per EVSE, from the last *surely* unplugged sample before each run of seed slots to
the first one after it, in slots that did not change, stays exactly as it was; and
recomputing those stretches, context samples included, gives exactly what a recompute of the
whole lake gives there. A surely unplugged sample is one whose own charging_state says so:
no other measurement can change that. An EVSE with no such sample before (after) a run
reaches back to its first (forward to its last) sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from powerflex_etl.lake.layout import SLOT_US


@dataclass(frozen=True)
class Stretch:
    """``lo <= time <= hi`` of one EVSE (None: unbounded); lo and hi are context samples."""

    evse_address: str
    lo: int | None
    hi: int | None

    def slots(self, first: int, last: int) -> range:
        """Slot starts this stretch touches, clipped to ``[first, last]``."""
        a = first if self.lo is None else max(first, self.lo // SLOT_US * SLOT_US)
        b = last if self.hi is None else min(last, self.hi // SLOT_US * SLOT_US)
        return range(a, b + 1, SLOT_US)

    def holds(self, t: int) -> bool:
        """Whether ``t`` lies strictly inside (where recomputed sessions start)."""
        return (self.lo is None or t > self.lo) and (self.hi is None or t < self.hi)


def seed_runs(seeds: Iterable[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive slot starts: (first, last) pairs in order."""
    runs: list[tuple[int, int]] = []
    for s in sorted(set(seeds)):
        if runs and s == runs[-1][1] + SLOT_US:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    return runs


@dataclass(frozen=True)
class SlotCut:
    """One EVSE in one unchanged slot: its first and last surely unplugged sample (or None)."""

    slot_start: int
    first_unplugged: int | None
    last_unplugged: int | None


def stretches(
    seeds: Iterable[int],
    cuts: Mapping[str, Sequence[SlotCut]],
    evses: Iterable[str],
) -> list[Stretch]:
    """The stretches to recompute, per EVSE, merged where they meet or overlap.

    ``cuts`` holds, per EVSE, its unchanged slots (seed slots are ignored if present);
    ``evses`` every EVSE to consider (those of ``cuts`` and those new in the seed slots).
    """
    runs = seed_runs(seeds)
    seed_set = {s for a, b in runs for s in range(a, b + 1, SLOT_US)}
    out: list[Stretch] = []
    for evse in sorted(set(evses) | set(cuts)):
        slots = sorted(
            (c for c in cuts.get(evse, ()) if c.slot_start not in seed_set),
            key=lambda c: c.slot_start,
        )
        found: list[tuple[int | None, int | None]] = []
        for a, b in runs:
            lo = max(
                (
                    c.last_unplugged
                    for c in slots
                    if c.slot_start < a and c.last_unplugged is not None
                ),
                default=None,
            )
            hi = min(
                (
                    c.first_unplugged
                    for c in slots
                    if c.slot_start > b and c.first_unplugged is not None
                ),
                default=None,
            )
            found.append((lo, hi))
        for lo, hi in _merge(found):
            out.append(Stretch(evse, lo, hi))
    return out


def _merge(spans: list[tuple[int | None, int | None]]) -> list[tuple[int | None, int | None]]:
    """Union of closed spans (None = unbounded), in order."""

    def key(span: tuple[int | None, int | None]) -> float:
        return float("-inf") if span[0] is None else float(span[0])

    merged: list[tuple[int | None, int | None]] = []
    for lo, hi in sorted(spans, key=key):
        if merged:
            plo, phi = merged[-1]
            if phi is None or lo is None or lo <= phi:
                new_hi = None if phi is None or hi is None else max(phi, hi)
                merged[-1] = (plo, new_hi)
                continue
        merged.append((lo, hi))
    return merged
