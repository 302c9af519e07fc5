"""Real ACN sites and sessions, and their deterministic mapping onto any day range.

Ids (all zero-padded strings, as PowerFlex sends them). An ACN-Data ``stationID`` such as
``"2-39-131-30"`` has the PowerFlex shape ``<acn>-<acc>-<acg>-<acs>`` (PowerFlex's own
``chargeSessionId`` uses the same four numbers), so for every EVSE:

- ``acn_id``  = the session's ``siteID``, e.g. ``"0002"`` (4 digits, as ACN-Data pads it);
- ``acc_id``  = the session's ``clusterID``, e.g. ``"0039"``;
- ``acg_id``  = 3rd number of ``stationID``, padded to 4 digits, e.g. ``"0131"``;
- ``acs_id``  = 4th number of ``stationID``, padded to 4 digits, e.g. ``"0030"``;
- ``evse_address`` = ``f"{acn_id}-{acc_id}-{acg_id}-{acs_id}"``;
- ``space_number`` = ACN ``spaceID`` (= acnportal ``station_id``), e.g. ``"CA-308"``;
- ``evse_type``, ``phases``, max rate and allowed pilots come from acnportal's network.

EVSEs of the network with no session in the data (no stationID to read) get
``acg_id = "0000"`` and ``acs_id`` = 9000 + their index in the network list.
``id_overrides`` in the config replace any of the four ids for a whole site.

Sessions outside the network list are skipped: that is the 1105 DC-fast sessions at
caltech space ``11900388`` (a ~31 kW charger acnportal does not model).

Day mapping: the requested UTC day ``d`` (days since the epoch) replays the real UTC day
``first + (d - first + offset) mod span`` of the site, where ``first`` is the first real
day with a session, ``span`` the number of real days, and ``offset`` derives from the
seed (0 for seed 0, so real dates then replay themselves). A session belongs to the day
of its connection and keeps its time of day. Sessions are capped at 48 h; a session whose
EVSE is taken again before it ends is cut 1 s before the next plug-in.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

DAY = 86400
MAX_SESSION_S = 48 * 3600
_MARGIN_DAYS = 3  # > MAX_SESSION_S in days, so a window sees every session that can reach it


@dataclass(frozen=True)
class Evse:
    """One charging station of a site, with the ids it reports."""

    index: int
    site: str
    acn_id: str
    acc_id: str
    acg_id: str
    acs_id: str
    space_number: str
    evse_type: str
    phases: str
    max_rate_a: float
    pilots_a: tuple[float, ...]

    @property
    def evse_address(self) -> str:
        """``acn_id-acc_id-acg_id-acs_id``."""
        return f"{self.acn_id}-{self.acc_id}-{self.acg_id}-{self.acs_id}"


@dataclass(frozen=True)
class RealSessions:
    """The real sessions of one site as parallel arrays (epoch seconds, NaN done = unknown)."""

    evse: np.ndarray  # int index into the site's EVSE list
    connect: np.ndarray
    done: np.ndarray
    disconnect: np.ndarray
    kwh: np.ndarray
    session_id: tuple[str, ...]
    first_day: int
    span_days: int


@dataclass(frozen=True)
class MappedSessions:
    """Sessions placed in simulated time for a day range, per EVSE sorted by connect."""

    evse: np.ndarray
    connect: np.ndarray
    done: np.ndarray  # NaN when the real data had no doneChargingTime
    disconnect: np.ndarray
    kwh: np.ndarray
    session_id: np.ndarray  # object array of str


def _pad(num: str) -> str:
    return num.zfill(4)


@lru_cache(maxsize=1)
def _network() -> dict[str, dict[str, Any]]:
    text = resources.files(__package__).joinpath("data/network.json").read_text()
    return json.loads(text)  # type: ignore[no-any-return]


@lru_cache(maxsize=1)
def _session_rows() -> tuple[tuple[str, ...], ...]:
    raw = resources.files(__package__).joinpath("data/sessions.csv.gz").read_bytes()
    reader = csv.reader(io.StringIO(gzip.decompress(raw).decode()))
    next(reader)
    return tuple(tuple(r) for r in reader)


def known_sites() -> tuple[str, ...]:
    """Sites the packaged data can replay."""
    return tuple(_network())


def site_evses(site: str, overrides: dict[str, str] | None = None) -> tuple[Evse, ...]:
    """The EVSEs of ``site`` in network order, with ids (see the module docstring)."""
    net = _network()[site]
    stations = {r[1]: r[2] for r in _session_rows() if r[0] == site}
    out = []
    for i, e in enumerate(net["evses"]):
        station = stations.get(e["space"], "")
        if station:
            _, _, acg, acs = station.split("-")
            acg_id, acs_id = _pad(acg), _pad(acs)
        else:
            acg_id, acs_id = "0000", str(9000 + i)
        ids = {
            "acn_id": str(net["site_id"]),
            "acc_id": str(net["cluster_id"]),
            "acg_id": acg_id,
            "acs_id": acs_id,
        }
        ids.update(overrides or {})
        out.append(
            Evse(
                index=i,
                site=site,
                space_number=e["space"],
                evse_type=e["evse_type"],
                phases=e["phases"],
                max_rate_a=float(e["max_rate_a"]),
                pilots_a=tuple(float(p) for p in e["pilots_a"]),
                **ids,
            )
        )
    return tuple(out)


@lru_cache(maxsize=8)
def real_sessions(site: str) -> RealSessions:
    """The packaged real sessions of ``site``."""
    index = {e["space"]: i for i, e in enumerate(_network()[site]["evses"])}
    rows = [r for r in _session_rows() if r[0] == site]
    connect = np.array([float(r[4]) for r in rows])
    first = int(connect.min() // DAY)
    last = int(connect.max() // DAY)
    return RealSessions(
        evse=np.array([index[r[1]] for r in rows], dtype=np.int64),
        connect=connect,
        done=np.array([float(r[5]) if r[5] else np.nan for r in rows]),
        disconnect=np.array([float(r[6]) for r in rows]),
        kwh=np.array([float(r[7]) for r in rows]),
        session_id=tuple(r[3] for r in rows),
        first_day=first,
        span_days=last - first + 1,
    )


def day_offset(seed: int, span_days: int) -> int:
    """Seed-derived shift of the day mapping; 0 for seed 0."""
    return (seed * 7919) % span_days


def map_sessions(site: str, seed: int, start: float, end: float) -> MappedSessions:
    """Sessions that may touch ``[start, end)``, placed in simulated time.

    The same simulated day always replays the same real day, so any two windows agree
    on every session they share.
    """
    rs = real_sessions(site)
    off = day_offset(seed, rs.span_days)
    real_day = (rs.connect // DAY).astype(np.int64)
    parts = []
    d0 = int(start // DAY) - _MARGIN_DAYS
    d1 = int(end // DAY) + _MARGIN_DAYS
    # each simulated day pulls its real day; sessions keep their time of day
    days = np.arange(d0, d1 + 1)
    src = rs.first_day + (days - rs.first_day + off) % rs.span_days
    for d, r in zip(days, src, strict=True):
        idx = np.nonzero(real_day == r)[0]
        if idx.size:
            parts.append((idx, float((d - r) * DAY)))
    if not parts:
        empty = np.array([], dtype=np.float64)
        return MappedSessions(
            np.array([], dtype=np.int64), empty, empty, empty, empty, np.array([], dtype=object)
        )
    idx = np.concatenate([p[0] for p in parts])
    shift = np.concatenate([np.full(p[0].size, p[1]) for p in parts])
    evse = rs.evse[idx]
    connect = rs.connect[idx] + shift
    disconnect = np.minimum(rs.disconnect[idx] + shift, connect + MAX_SESSION_S)
    done = rs.done[idx] + shift
    kwh = rs.kwh[idx]
    sid = np.array([rs.session_id[i] for i in idx], dtype=object)
    order = np.lexsort((sid.astype(str), connect, evse))
    evse, connect, disconnect, done, kwh, sid = (
        a[order] for a in (evse, connect, disconnect, done, kwh, sid)
    )
    # the EVSE is taken again: this session ends 1 s before the next plug-in
    same = np.zeros(evse.size, dtype=bool)
    same[:-1] = evse[:-1] == evse[1:]
    nxt = np.full(evse.size, np.inf)
    nxt[:-1] = connect[1:] - 1.0
    disconnect = np.where(same, np.minimum(disconnect, nxt), disconnect)
    keep = disconnect - connect >= 30.0
    return MappedSessions(
        evse[keep], connect[keep], done[keep], disconnect[keep], kwh[keep], sid[keep]
    )
