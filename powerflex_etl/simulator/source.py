"""What the server serves: blocks of rows per site and EVSE for a window, and its truth."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from .config import SimulatorConfig
from .data import DAY, Evse, map_sessions, site_evses
from .encode import constants
from .generate import COLUMNS, STATES, Block, generate, plan_sessions

MEASUREMENTS: tuple[str, ...] = tuple(COLUMNS)


def evses(config: SimulatorConfig) -> list[Evse]:
    """Every EVSE the simulator reports, site by site."""
    out: list[Evse] = []
    for site in config.sites:
        out += site_evses(site, config.id_overrides.get(site))
    return out


def blocks(config: SimulatorConfig, measurement: str, start: float, end: float) -> Iterator[Block]:
    """Rows for ``[start, end)``: per site, per EVSE, one block per UTC day, in time order."""
    if end <= start:
        return
    days = np.arange(np.floor(start / DAY) * DAY, end, DAY)
    for site in config.sites:
        mapped = map_sessions(site, config.seed, start, end)
        for evse in site_evses(site, config.id_overrides.get(site)):
            plan = plan_sessions(evse, mapped, config.sample_period_s)
            for d in days:
                yield generate(
                    measurement,
                    evse,
                    plan,
                    seed=config.seed,
                    period=config.sample_period_s,
                    start=max(start, float(d)),
                    end=min(end, float(d) + DAY),
                )


def truth(config: SimulatorConfig, measurement: str, start: float, end: float) -> pa.Table:
    """The rows a faithful answer holds, in source names and units; time as epoch seconds."""
    cols = COLUMNS[measurement]
    parts: dict[str, list[np.ndarray | list[str | None]]] = {c: [] for c in cols}
    for b in blocks(config, measurement, start, end):
        n = len(b)
        if not n:
            continue
        consts = constants(b)
        for c in cols:
            if c == "time":
                parts[c].append(b.time)
            elif c == "charging_state":
                parts[c].append([STATES[s] for s in b.state])
            elif c in b.values:
                parts[c].append(b.values[c])
            else:
                parts[c].append([consts[c]] * n)
    arrays = []
    for c in cols:
        if c in ("time",) or (parts[c] and isinstance(parts[c][0], np.ndarray)):
            v = np.concatenate(parts[c]) if parts[c] else np.array([], dtype=np.float64)  # type: ignore[arg-type]
            arrays.append(pa.array(v, type=pa.float64(), from_pandas=c != "time"))
        elif parts[c]:
            arrays.append(pa.array([x for p in parts[c] for x in p], type=pa.string()))
        else:
            numeric = c not in constants_names()
            arrays.append(pa.array([], type=pa.float64() if numeric else pa.string()))
    return pa.table(arrays, names=list(cols))


def constants_names() -> frozenset[str]:
    """Columns that are strings (ids, labels, state)."""
    return frozenset(
        {
            "acn_id",
            "acc_id",
            "acg_id",
            "acs_id",
            "evse_address",
            "evse_type",
            "phases",
            "space_number",
            "version",
            "charging_state",
        }
    )


def sessions(config: SimulatorConfig, start: float, end: float) -> pa.Table:
    """The real sessions placed in ``[start, end)`` (overlapping it), one row each."""
    ts = pa.timestamp("us", tz="UTC")
    rows: dict[str, list[object]] = {
        k: []
        for k in (
            "evse_address", "acc_id", "space_number", "session_start", "session_end",
            "done_charging", "kwh_delivered", "energy_kwh_served", "session_id",
        )
    }  # fmt: skip
    for site in config.sites:
        mapped = map_sessions(site, config.seed, start, end)
        for evse in site_evses(site, config.id_overrides.get(site)):
            plan = plan_sessions(evse, mapped, config.sample_period_s)
            sel = np.nonzero(mapped.evse == evse.index)[0]
            for i, j in enumerate(sel):
                if not (plan.connect[i] < end and plan.disconnect[i] > start):
                    continue
                rows["evse_address"].append(evse.evse_address)
                rows["acc_id"].append(evse.acc_id)
                rows["space_number"].append(evse.space_number)
                rows["session_start"].append(round(plan.connect[i] * 1e6))
                rows["session_end"].append(round(plan.disconnect[i] * 1e6))
                rows["done_charging"].append(round(plan.done[i] * 1e6))
                rows["kwh_delivered"].append(float(plan.kwh[i]))
                # the telemetry reaches the real kWhDelivered exactly at done_charging
                rows["energy_kwh_served"].append(float(plan.kwh[i]))
                rows["session_id"].append(str(mapped.session_id[j]))
    types = {
        "session_start": ts,
        "session_end": ts,
        "done_charging": ts,
        "kwh_delivered": pa.float64(),
        "energy_kwh_served": pa.float64(),
    }
    return pa.table({k: pa.array(v, type=types.get(k, pa.string())) for k, v in rows.items()})
