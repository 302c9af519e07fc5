"""The dlt (dlthub) way, as a baseline: a resource over 6 h windows into the filesystem destination.

Written as dlt's documentation recommends for a REST API whose answers are big: one
``@dlt.resource`` that logs in, posts one window at a time, converts units and yields the
window's rows; ``pipeline.run(..., loader_file_format="parquet")`` into a local
``filesystem`` destination. Two styles:

- ``--mode arrow``: one ``pyarrow.Table`` per window (dlt's fast path: extract writes the
  tables as Parquet, normalize and load only move files);
- ``--mode dict``: a list of dict rows per window (dlt's default style: dlt infers the
  schema, normalizes every row and writes Parquet itself).

``--gc-pause`` pauses the cyclic garbage collector while a window is decoded (the trick the
project uses), to show how much of the difference that one trick is (side ``dlt-arrow-gc``
of ``ingest_vs_dlt.py``, not run by default).

Runs in its own venv (``benchmarks/_dltenv.py`` makes it), never imports powerflex_etl.

    python benchmarks/dlt_ingest.py --base-url URL --start ISO --end ISO --out DIR --mode arrow
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import dlt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import requests
from dlt.common import json as dlt_json

WINDOW = timedelta(hours=6)
# source field -> (lake column, divisor): the units of CONTRACT §2
UNITS = {
    "energy_delivered": ("energy_delivered_kwh", 1e6),
    "mamps_actual": ("current_actual_a", 1e3),
    "voltage": ("voltage_v", 1e3),
    "pilot_actual": ("pilot_actual_a", 1.0),
    "power": ("power_kw", 1.0),
    "peak_rate": ("peak_rate", 1.0),  # a number without a unit change
}


def windows(start: datetime, end: datetime) -> Iterator[tuple[int, int]]:
    """[start, end) in 6 h steps, as epoch seconds."""
    t = start
    while t < end:
        nxt = min(t + WINDOW, end)
        yield int(t.timestamp()), int(nxt.timestamp())
        t = nxt


def fetch(session: requests.Session, url: str, token: str, s0: int, s1: int) -> dict[str, Any]:
    r = session.post(
        f"{url}/get_measurement_data",
        json={"measurement": "ct_response", "time_filter": [s0, s1]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=600,
    )
    r.raise_for_status()
    # dlt's own JSON (orjson): several times faster than requests' .json() (simplejson
    # here, a dlt dependency), as a user who cares about speed would write it
    doc: dict[str, Any] = dlt_json.loadb(r.content)
    return doc.get("data", doc)


def series_of(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for result in doc.get("results", []):
        yield from result.get("series", None) or []


def arrow_table(series: dict[str, Any], s0: int, s1: int) -> pa.Table:
    """One series as an Arrow table in the lake's units (rows outside the window dropped)."""
    names = series["columns"]
    cols = list(zip(*series["values"], strict=True)) if series["values"] else [()] * len(names)
    out: dict[str, pa.Array] = {}
    for name, values in zip(names, cols, strict=True):
        if name == "time":
            secs = np.asarray(values, dtype=np.float64)
            out["time"] = pa.array(np.rint(secs * 1e6).astype(np.int64)).cast(
                pa.timestamp("us", tz="UTC")
            )
        elif name in UNITS:
            col, div = UNITS[name]
            arr = pa.array(values, pa.float64())
            out[col] = pc.divide(arr, div) if div != 1.0 else arr
        else:
            out[name] = pa.array(values, pa.string())
    n = len(cols[0]) if cols else 0
    for k, v in (series.get("tags") or {}).items():
        out[k] = pa.array([v] * n, pa.string())
    table = pa.table(out)
    lo = pa.scalar(s0 * 1_000_000, pa.timestamp("us", tz="UTC"))
    hi = pa.scalar(s1 * 1_000_000, pa.timestamp("us", tz="UTC"))
    return table.filter(pc.and_(pc.greater_equal(table["time"], lo), pc.less(table["time"], hi)))


def dict_rows(series: dict[str, Any], s0: int, s1: int) -> list[dict[str, Any]]:
    """One series as dict rows in the lake's units (rows outside the window dropped)."""
    names = series["columns"]
    tags = series.get("tags") or {}
    rows = []
    for values in series["values"]:
        row = dict(zip(names, values, strict=True))
        t = row.pop("time")
        if not s0 <= t < s1:
            continue
        row["time"] = datetime.fromtimestamp(t, UTC)
        for src, (col, div) in UNITS.items():
            v = row.pop(src, None)
            row[col] = None if v is None else (v / div if div != 1.0 else float(v))
        row.update(tags)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--mode", choices=["arrow", "dict"], default="arrow")
    ap.add_argument("--gc-pause", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    url = args.base_url
    start = datetime.fromisoformat(args.start)
    end = datetime.fromisoformat(args.end)

    @dlt.resource(name="ct_response", write_disposition="append")
    def ct_response() -> Iterator[Any]:
        session = requests.Session()
        token = session.post(
            f"{url}/login",
            json={
                "username": os.environ.get("POWERFLEX_USERNAME", "demo"),
                "password": os.environ.get("POWERFLEX_PASSWORD", "demo-password"),
            },
            timeout=60,
        ).json()["access_token"]
        for s0, s1 in windows(start, end):
            if args.gc_pause:
                gc.disable()
            try:
                doc = fetch(session, url, token, s0, s1)
                if args.mode == "arrow":
                    items: Any = [arrow_table(s, s0, s1) for s in series_of(doc)]
                else:
                    items = [r for s in series_of(doc) for r in dict_rows(s, s0, s1)]
                del doc
            finally:
                if args.gc_pause:
                    gc.enable()
            if args.mode == "arrow":
                yield from items
            else:
                yield items

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{args.mode}",
        pipelines_dir=os.path.join(args.out, "_pipelines"),
        destination=dlt.destinations.filesystem(bucket_url=os.path.join(args.out, "data")),
        dataset_name="powerflex",
    )
    info = pipeline.run(ct_response(), loader_file_format="parquet")
    info.raise_on_failed_jobs()
    print(json.dumps({"seconds": time.perf_counter() - t0, "loads": len(info.loads_ids)}))


if __name__ == "__main__":
    main()
