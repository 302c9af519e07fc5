"""Per-EVSE telemetry for a window, vectorised with numpy.

Everything is a pure function of (seed, sample period, EVSE, session list, sample index),
so a window holds exactly the rows of the union of its sub-windows, and the three
measurements agree with each other. Sample times sit on an absolute grid per EVSE and
measurement: ``k * period + offset + jitter(k)``, rounded to the microsecond, so they carry
sub-second fractions like the real data. Values are in the API's source units
(mWh, mA, mV, A, kW), integer-valued where the unit allows, like InfluxDB prints them.

Session shape, per real session: plug-in -> NOT CHARGING for one sample period -> READY
for one -> ADAPTIVE with ``energy_delivered`` rising linearly to exactly the session's
``kWhDelivered`` at ``doneChargingTime`` -> IDLE until ``disconnectTime`` -> UNPLUGGED,
energy back to 0. ``doneChargingTime`` missing: the energy at the EVSE's max rate (at its
nominal 208 V) sets it; after the disconnect: the disconnect. The charging current is
the energy rate divided by the voltage (1 % noise), so ``power = V * I / 1000`` holds; the
pilot is the smallest allowed pilot at or above the mean current (the current may sit a
little above it, as in the real excerpts). Voltage is 208-240 V around 228 V (the
excerpts show 226-229 V), null when nothing is plugged in (as on the excerpts' unplug
row) and on 0.5 % of samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from powerflex_etl.simulator.data import Evse, MappedSessions

STATES: tuple[str, ...] = ("UNPLUGGED", "NOT CHARGING", "READY", "ADAPTIVE", "IDLE")
UNPLUGGED, NOT_CHARGING, READY, ADAPTIVE, IDLE = range(5)
NOMINAL_V = 208.0
VERSION = "1"

# (period multiple, phase stream) per measurement: evse_request every 2 periods
CADENCE: dict[str, tuple[float, int]] = {
    "ct_response": (1.0, 11),
    "evse_request": (2.0, 12),
    "evse_response": (1.0, 13),
}

# source columns per measurement, in InfluxDB's order (time, then by name)
COLUMNS: dict[str, tuple[str, ...]] = {
    "ct_response": (
        "time", "acc_id", "acg_id", "acn_id", "acs_id", "charging_state", "energy_delivered",
        "evse_address", "evse_type", "mamps_actual", "peak_rate", "phases", "pilot_actual",
        "power", "space_number", "version", "voltage",
    ),
    "evse_request": (
        "time", "acc_id", "acg_id", "acn_id", "acs_id", "charging_state", "evse_address",
        "evse_type", "mamps_last", "mamps_limit", "mamps_rampdown", "space_number", "version",
    ),
    "evse_response": (
        "time", "acc_id", "acg_id", "acn_id", "acs_id", "charging_state", "connected",
        "contactor", "evse_address", "evse_type", "mamps_last", "response_period",
        "space_number", "version",
    ),
}  # fmt: skip
ID_COLUMNS: tuple[str, ...] = ("acn_id", "acc_id", "acg_id", "acs_id", "evse_address")
CONSTANT_COLUMNS: tuple[str, ...] = (*ID_COLUMNS, "evse_type", "phases", "space_number", "version")
# numbers sent with decimals; every other number is integer-valued
FRACTIONAL: frozenset[str] = frozenset({"power", "response_period"})


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a stateless hash, so any sample's noise is reproducible alone."""
    # array integer arithmetic wraps silently, which is what the hash wants
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@lru_cache(maxsize=65536)
def _base(seed: int, stream: int, key: int) -> np.uint64:
    x = (seed * 1_000_003 + stream * 7919 + key * 104_729) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return np.uint64(x ^ (x >> 31))


def uniform(seed: int, stream: int, key: int, k: np.ndarray) -> np.ndarray:
    """Uniform [0, 1) per sample index ``k``, fixed by (seed, stream, key)."""
    h = _mix(
        k.astype(np.int64).view(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        + _base(seed, stream, key)
    )
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def constant(seed: int, stream: int, key: int) -> float:
    """One uniform [0, 1) fixed by (seed, stream, key)."""
    return float(uniform(seed, stream, key, np.zeros(1, dtype=np.int64))[0])


@dataclass(frozen=True)
class Block:
    """One EVSE's rows of one measurement: times plus value columns (NaN = null)."""

    evse: Evse
    time: np.ndarray  # float64 epoch seconds, µs precision, ascending
    state: np.ndarray  # int8 index into STATES
    values: dict[str, np.ndarray]  # float64

    def __len__(self) -> int:
        return int(self.time.size)


def _grid(
    seed: int, key: int, period: float, stream: int, start: float, end: float
) -> tuple[np.ndarray, np.ndarray]:
    offset = constant(seed, stream, key) * period
    jit_max = 0.1 * period
    k0 = int(np.floor((start - offset - jit_max) / period)) - 1
    k1 = int(np.ceil((end - offset) / period)) + 1
    k = np.arange(k0, k1, dtype=np.int64)
    t = _times(seed, key, period, stream, offset, jit_max, k)
    keep = (t >= start) & (t < end)
    return k[keep], t[keep]


def _times(
    seed: int, key: int, period: float, stream: int, offset: float, jit_max: float, k: np.ndarray
) -> np.ndarray:
    raw = k * period + offset + uniform(seed, stream + 100, key, k) * jit_max
    return np.round(raw * 1e6) / 1e6


@dataclass(frozen=True)
class _Plan:
    """Per-session derived timings and rates for one EVSE."""

    connect: np.ndarray
    ready_at: np.ndarray
    charge_at: np.ndarray
    done: np.ndarray
    disconnect: np.ndarray
    kwh: np.ndarray
    kw: np.ndarray  # mean charging power
    pilot: np.ndarray  # A
    amps: np.ndarray  # mean current at 228 V


def plan_sessions(evse: Evse, s: MappedSessions, period: float) -> _Plan:
    """Timings of each session of ``evse`` (the rows of ``s`` for that EVSE)."""
    sel = s.evse == evse.index
    connect, disconnect, kwh = s.connect[sel], s.disconnect[sel], s.kwh[sel]
    real_done = s.done[sel]
    max_kw = evse.max_rate_a * NOMINAL_V / 1000.0
    pre = np.minimum(period, (disconnect - connect) / 4.0)
    guess = connect + 2 * pre + kwh / max_kw * 3600.0
    done = np.where(np.isnan(real_done), guess, real_done)
    done = np.clip(done, connect + 3 * pre, disconnect)
    pre = np.minimum(pre, (done - connect) / 3.0)
    ready_at = connect + pre
    charge_at = connect + 2 * pre
    kw = kwh / ((done - charge_at) / 3600.0)
    amps = kw * 1000.0 / 228.0
    pilots = np.array(sorted(p for p in evse.pilots_a if p > 0))
    pos = np.minimum(np.searchsorted(pilots, amps - 1e-9), pilots.size - 1)
    return _Plan(connect, ready_at, charge_at, done, disconnect, kwh, kw, pilots[pos], amps)


def _session_at(plan: _Plan, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    i = np.searchsorted(plan.connect, t, side="right") - 1
    ic = np.maximum(i, 0)
    on = (i >= 0) & (t < plan.disconnect[ic]) if plan.connect.size else np.zeros(t.size, dtype=bool)
    return ic, on


def _states(plan: _Plan, t: np.ndarray, ic: np.ndarray, on: np.ndarray) -> np.ndarray:
    if not plan.connect.size:
        return np.zeros(t.size, dtype=np.int8)
    st = np.full(t.size, IDLE, dtype=np.int8)
    st[t < plan.done[ic]] = ADAPTIVE
    st[t < plan.charge_at[ic]] = READY
    st[t < plan.ready_at[ic]] = NOT_CHARGING
    st[~on] = UNPLUGGED
    return st


def _voltage(seed: int, key: int, t: np.ndarray, k: np.ndarray, stream: int) -> np.ndarray:
    base = 228.0 + (constant(seed, 21, key) - 0.5) * 4.0
    daily = 3.0 * np.sin(2 * np.pi * (t / 86400.0 + key / 7.0))
    noise = (uniform(seed, stream, key, k) + uniform(seed, stream + 1, key, k) - 1.0) * 0.6
    return np.clip(np.round((base + daily + noise) * 10.0) / 10.0, 208.0, 240.0)


def generate(
    measurement: str, evse: Evse, plan: _Plan, *, seed: int, period: float, start: float, end: float
) -> Block:
    """The rows of ``measurement`` for ``evse`` with ``start <= time < end``."""
    mult, stream = CADENCE[measurement]
    key = evse.index + 1000 * (sum(evse.site.encode()) % 997)
    p = period * mult
    k, t = _grid(seed, key, p, stream, start, end)
    ic, on = _session_at(plan, t)
    st = _states(plan, t, ic, on)
    adaptive = st == ADAPTIVE
    volts = _voltage(seed, key, t, k, stream + 30)
    noise = 1.0 + (uniform(seed, stream + 40, key, k) - 0.5) * 0.02
    amps = (
        np.where(adaptive, plan.kw[ic] * 1000.0 / volts * noise, 0.0)
        if plan.connect.size
        else np.zeros(t.size)
    )
    amps = np.round(amps * 100.0) / 100.0  # 10 mA resolution
    mamps = np.round(amps * 1000.0)
    pilot = np.where(on, plan.pilot[ic], 0.0) if plan.connect.size else np.zeros(t.size)
    peak = (
        np.where(on, np.round(plan.amps[ic] * 1000.0), 0.0)
        if plan.connect.size
        else np.zeros(t.size)
    )
    values: dict[str, np.ndarray] = {}
    if measurement == "ct_response":
        if plan.connect.size:
            frac = np.clip(
                (t - plan.charge_at[ic]) / (plan.done[ic] - plan.charge_at[ic]), 0.0, 1.0
            )
            frac = np.where(st == IDLE, 1.0, np.where(adaptive, frac, 0.0))
            energy = np.round(plan.kwh[ic] * 1e6 * frac)
        else:
            energy = np.zeros(t.size)
        dropout = uniform(seed, stream + 50, key, k) < 0.005
        shown_v = np.where(on & ~dropout, volts * 1000.0, np.nan)
        values = {
            "energy_delivered": energy,
            "mamps_actual": mamps,
            "peak_rate": peak,
            "pilot_actual": pilot,
            "power": np.round(volts * amps / 1000.0, 4),
            "voltage": np.round(shown_v),
        }
    elif measurement == "evse_request":
        values = {
            "mamps_last": mamps,
            "mamps_limit": pilot * 1000.0,
            "mamps_rampdown": np.round(peak * 1.05),
        }
    else:
        offset = constant(seed, stream, key) * p
        prev = _times(seed, key, p, stream, offset, 0.1 * p, k - 1)
        values = {
            "connected": on.astype(np.float64),
            "contactor": adaptive.astype(np.float64),
            "mamps_last": mamps,
            "response_period": np.round(t - prev, 3),
        }
    return Block(evse, t, st, values)
