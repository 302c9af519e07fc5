"""Rebuild the simulator's packaged data from the real public files (run by hand, rarely).

    python -m powerflex_etl.simulator.build_data /work/shared/data/real

Writes ``data/sessions.csv.gz`` (one row per real ACN session on a network EVSE) and
``data/network.json`` (the EVSEs of each site, from acnportal's network definitions).
Only the fields the simulator replays are kept, so the package stays small.

``caltech_mar2019`` is the same garage in a busy month before 2020 (954 sessions, dozens a
weekday; what ``powerflex-etl demo`` replays), read from acnportal's serialised event queue
of March 2019: its EVs carry the ACN sessionID, whose last part is the exact UTC connection
time and whose first four numbers are the stationID; the departure is known to the 5-minute
period only, the energy is kWhDelivered, and no doneChargingTime is kept.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

SITES = {
    "caltech": "acn_data/acndata_sessions_cal_dec2020_may2023.json",
    "office001": "acn_data/office001/acndata_sessions.json",
}
DATA_DIR = Path(__file__).parent / "data"
# site -> (its network in acnportal's definitions, the event queue file)
EVENT_SITES = {
    "caltech_mar2019": (
        "caltech",
        "acnportal/caltech_20190301T000000_20190401T000000_5m_208V_6.6kW.json.gz",
    ),
}
# the event queue's period 0 and period length (its file name: 5m from 2019-03-01 local)
_EVENTS_T0 = datetime(2019, 3, 1, 8, 0, tzinfo=UTC)  # 00:00 America/Los_Angeles (PST)
_EVENTS_PERIOD_S = 300


def _epoch(text: str | None) -> str:
    if not text:
        return ""
    dt = datetime.strptime(text, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    return str(int(dt.timestamp()))


def _event_sessions(path: Path) -> list[dict[str, str]]:
    """The EVs of an acnportal event queue as ACN-Data-like items (see the module docstring)."""
    doc = json.loads(gzip.decompress(path.read_bytes()))
    if isinstance(doc, str):  # acnportal writes a JSON string holding the JSON
        doc = json.loads(doc)
    items = []
    for obj in doc["context_dict"].values():
        if not obj["class"].endswith(".EV"):
            continue
        ev = obj["attributes"]
        sid = ev["_session_id"]
        *station, connected = sid.split("_")
        connect = datetime.fromisoformat(connected).replace(tzinfo=UTC)
        departure = _EVENTS_T0.timestamp() + ev["_departure"] * _EVENTS_PERIOD_S
        items.append(
            {
                "spaceID": ev["_station_id"],
                "stationID": "-".join(station),
                "sessionID": sid,
                "connect": str(int(connect.timestamp())),
                # the period is floored: a session always ends after it starts
                "disconnect": str(int(max(departure, connect.timestamp() + _EVENTS_PERIOD_S))),
                "kwh": repr(float(ev["_requested_energy"])),
                "siteID": station[0].zfill(4),
                "clusterID": station[1].zfill(4),
            }
        )
    return items


def _network_entry(
    evses: list[dict[str, object]], station_of: dict[str, str], site_id: str, cluster_id: str
) -> dict[str, object]:
    return {
        "site_id": site_id,
        "cluster_id": cluster_id,
        "evses": [
            {
                "space": e["station_id"],
                "station_id": station_of.get(str(e["station_id"]), ""),
                "evse_type": e["evse_type"],
                "phases": e["phases"],
                "max_rate_a": e["max_rate_A"],
                "pilots_a": e["allowable_pilot_signals_A"],
            }
            for e in evses
        ],
    }


def build(real_dir: Path, out_dir: Path = DATA_DIR) -> None:
    """Write the compact session table and network file from ``real_dir`` into ``out_dir``."""
    nets = json.loads((real_dir / "acnportal/acnportal_network_definitions.json").read_text())
    network: dict[str, object] = {}
    rows: list[list[str]] = []
    station_of: dict[str, str]
    for site, (net_name, rel) in EVENT_SITES.items():
        evses = nets[net_name]["evses"]
        on_network = {e["station_id"] for e in evses}
        station_of = {}
        items = [it for it in _event_sessions(real_dir / rel) if it["spaceID"] in on_network]
        for it in items:
            station_of.setdefault(it["spaceID"], it["stationID"])
            # no doneChargingTime in an event queue: empty, as ACN-Data's nulls are
            keys = ("spaceID", "stationID", "sessionID", "connect", "done", "disconnect", "kwh")
            rows.append([site, *(it.get(k, "") for k in keys)])
        network[site] = _network_entry(evses, station_of, items[0]["siteID"], items[0]["clusterID"])
    for site, rel in SITES.items():
        doc = json.loads((real_dir / rel).read_text())
        items = doc["_items"]
        evses = nets[site]["evses"]
        on_network = {e["station_id"] for e in evses}
        station_of = {}
        for it in items:
            if it["spaceID"] in on_network:
                station_of.setdefault(it["spaceID"], it["stationID"])
                rows.append(
                    [
                        site,
                        it["spaceID"],
                        it["stationID"],
                        it["sessionID"],
                        _epoch(it["connectionTime"]),
                        _epoch(it["doneChargingTime"]),
                        _epoch(it["disconnectTime"]),
                        repr(float(it["kWhDelivered"])),
                    ]
                )
        network[site] = _network_entry(evses, station_of, items[0]["siteID"], items[0]["clusterID"])
    rows.sort(key=lambda r: (r[0], r[1], int(r[4])))
    network = dict(sorted(network.items()))
    out_dir.mkdir(exist_ok=True)
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["site", "space", "station_id", "session_id", "connect", "done", "disconnect", "kwh"]
    )
    w.writerows(rows)
    # mtime=0 keeps the file byte-identical across rebuilds
    (out_dir / "sessions.csv.gz").write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))
    (out_dir / "network.json").write_text(json.dumps(network, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/real"))
