"""Rebuild the simulator's packaged data from the real public files (run by hand, rarely).

    python -m powerflex_etl.simulator.build_data /work/shared/data/real

Writes ``data/sessions.csv.gz`` (one row per real ACN session on a network EVSE) and
``data/network.json`` (the EVSEs of each site, from acnportal's network definitions).
Only the fields the simulator replays are kept, so the package stays small.
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


def _epoch(text: str | None) -> str:
    if not text:
        return ""
    dt = datetime.strptime(text, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    return str(int(dt.timestamp()))


def build(real_dir: Path) -> None:
    """Write the compact session table and network file from ``real_dir``."""
    nets = json.loads((real_dir / "acnportal/acnportal_network_definitions.json").read_text())
    network: dict[str, object] = {}
    rows: list[list[str]] = []
    for site, rel in SITES.items():
        doc = json.loads((real_dir / rel).read_text())
        items = doc["_items"]
        evses = nets[site]["evses"]
        on_network = {e["station_id"] for e in evses}
        station_of: dict[str, str] = {}
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
        network[site] = {
            "site_id": items[0]["siteID"],
            "cluster_id": items[0]["clusterID"],
            "evses": [
                {
                    "space": e["station_id"],
                    "station_id": station_of.get(e["station_id"], ""),
                    "evse_type": e["evse_type"],
                    "phases": e["phases"],
                    "max_rate_a": e["max_rate_A"],
                    "pilots_a": e["allowable_pilot_signals_A"],
                }
                for e in evses
            ],
        }
    rows.sort(key=lambda r: (r[0], r[1], int(r[4])))
    DATA_DIR.mkdir(exist_ok=True)
    buf = io.StringIO(newline="")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(
        ["site", "space", "station_id", "session_id", "connect", "done", "disconnect", "kwh"]
    )
    w.writerows(rows)
    # mtime=0 keeps the file byte-identical across rebuilds
    (DATA_DIR / "sessions.csv.gz").write_bytes(gzip.compress(buf.getvalue().encode(), mtime=0))
    (DATA_DIR / "network.json").write_text(json.dumps(network, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    build(Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/real"))
