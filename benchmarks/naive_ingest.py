"""The plain way, as a baseline: requests + json + pandas + to_parquet by date.

What a careful analyst writes in an afternoon: log in, ask for the whole range at once,
json.loads the answer, build a DataFrame, convert units, write Parquet partitioned by date.
Run as a script so the benchmark can measure its time and peak RSS in a process of its own.

    python benchmarks/naive_ingest.py --base-url URL --start ISO --end ISO --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime

import pandas as pd
import requests


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--start", required=True)
    ap.add_argument("--end", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--measurement", default="ct_response")
    args = ap.parse_args()
    t0 = time.perf_counter()
    user = os.environ.get("POWERFLEX_USERNAME", "demo")
    password = os.environ.get("POWERFLEX_PASSWORD", "demo-password")
    token = requests.post(
        f"{args.base_url}/login", json={"username": user, "password": password}, timeout=60
    ).json()["access_token"]
    start = int(datetime.fromisoformat(args.start).timestamp())
    end = int(datetime.fromisoformat(args.end).timestamp())
    r = requests.post(
        f"{args.base_url}/get_measurement_data",
        json={"measurement": args.measurement, "time_filter": [start, end]},
        headers={"Authorization": f"Bearer {token}"},
        timeout=3600,
    )
    r.raise_for_status()
    doc = json.loads(r.content)
    doc = doc.get("data", doc)
    frames = []
    for result in doc["results"]:
        for series in result.get("series", []):
            df = pd.DataFrame(series["values"], columns=series["columns"])
            for k, v in (series.get("tags") or {}).items():
                df[k] = v
            frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["time"] = pd.to_datetime(df["time"], unit="s", utc=True)
    df["energy_delivered_kwh"] = df.pop("energy_delivered") / 1e6
    df["current_actual_a"] = df.pop("mamps_actual") / 1e3
    df["voltage_v"] = df.pop("voltage") / 1e3
    df["pilot_actual_a"] = df.pop("pilot_actual")
    df["power_kw"] = df.pop("power")
    df = df.drop_duplicates(["evse_address", "time"], keep="last")
    df["date"] = df["time"].dt.strftime("%Y-%m-%d")
    df.to_parquet(args.out, partition_cols=["date"], index=False)
    print(json.dumps({"points": len(df), "seconds": time.perf_counter() - t0}))


if __name__ == "__main__":
    main()
    # the work is done and written; pyarrow's Parquet threads can abort the interpreter's
    # teardown after a partitioned write ("terminate called without an active exception",
    # apache/arrow#34314: seen once in a benchmark run here), which would fail the run
    sys.stdout.flush()
    os._exit(0)
