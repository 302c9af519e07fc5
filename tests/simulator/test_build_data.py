"""The packaged replay data is what the real public files say, rebuilt byte for byte."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from powerflex_etl.simulator import build_data
from powerflex_etl.simulator.data import real_sessions, site_evses

REAL = Path("/work/shared/data/real")
if not REAL.is_dir():
    REAL = Path(__file__).resolve().parents[3] / "shared/data/real"
EVENTS = REAL / build_data.EVENT_SITES["caltech_mar2019"][1]


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/data/real is not beside the checkout")
def test_rebuilding_from_the_real_files_gives_the_packaged_files(tmp_path: Path) -> None:
    build_data.build(REAL, tmp_path)
    for name in ("sessions.csv.gz", "network.json"):
        assert (tmp_path / name).read_bytes() == (build_data.DATA_DIR / name).read_bytes(), name


@pytest.mark.skipif(not EVENTS.is_file(), reason="the acnportal event queue is not here")
def test_march_2019_replays_every_ev_of_the_event_queue_at_its_real_time() -> None:
    doc = json.loads(gzip.decompress(EVENTS.read_bytes()))
    doc = json.loads(doc) if isinstance(doc, str) else doc
    evs = [o["attributes"] for o in doc["context_dict"].values() if o["class"].endswith(".EV")]
    real = real_sessions("caltech_mar2019")
    assert len(evs) == len(real.connect) == 954
    # the sessionID ends in the UTC connection time; the simulator keeps it to the second
    expected = sorted(
        int(datetime.fromisoformat(e["_session_id"].split("_")[-1]).replace(tzinfo=UTC).timestamp())
        for e in evs
    )
    assert sorted(real.connect.astype(int)) == expected
    assert np.isclose(real.kwh.sum(), sum(e["_requested_energy"] for e in evs))
    assert (real.disconnect > real.connect).all()
    # the same garage, the same ids as the caltech replay of 2020-21
    evses = site_evses("caltech_mar2019")
    assert len(evses) == 54 and {e.acc_id for e in evses} == {"0039"}
    assert {e.acn_id for e in evses} == {"0002"}
