"""Gigantic and endless answers against ``max_answer_bytes``: stop early, stay small, commit nothing.

A loopback server streams a 300 MB answer (close-delimited, no length announced) or an
endless chunked one, generated on the fly from one shared 1 MB block. The client must stop
at the limit with an ``AnswerTooLargeError`` naming the measurement and window; the CLI
prints one line and exits non-zero with its peak RSS far below the body; the pipeline's
auto-split ends at its minimum window instead of looping; the lake is left as it was.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from powerflex_etl.api.client import PowerflexClient
from powerflex_etl.errors import AnswerTooLargeError, WindowError
from powerflex_etl.ingest import window as pipeline
from powerflex_etl.ingest.run import run_windows
from powerflex_etl.lake.state import State
from powerflex_etl.lake.store import Lake
from powerflex_etl.settings import Settings
from powerflex_etl.windows import Window
from tests.fixtures.cli_run import digest_tree, run_cli
from tests.fixtures.fake_api import FakeApi, Stream, influx_body, serve

T0 = datetime(2021, 6, 1, tzinfo=UTC)
T1 = T0 + timedelta(hours=6)
MB = 1024 * 1024
BIG = 300 * MB
LIMIT = 4 * MB

_HEAD = (
    b'{"results":[{"statement_id":0,"series":[{"name":"ct_response",'
    b'"columns":["time","evse_address","power"],"values":['
)
_ROW = b'[1622505600,"33-73-211-963",1.5],'
_BLOCK = _ROW * (MB // len(_ROW))  # shared by every stream: the server holds 1 MB, not 300


def huge(total: int) -> Iterator[bytes]:
    """A syntactically plausible answer of ``total`` bytes, produced block by block."""
    yield _HEAD
    sent = len(_HEAD)
    while sent + len(_BLOCK) < total:
        yield _BLOCK
        sent += len(_BLOCK)
    yield _ROW[:-1] + b"]}]}]}"


def endless() -> Iterator[bytes]:
    yield _HEAD
    yield from itertools.repeat(_BLOCK)


def good(measurement: str, start: float, stop: float) -> bytes:
    rows = [[start + 60 * i, "33-73-211-963", 1.0 + i] for i in range(int((stop - start) // 60))]
    return influx_body(measurement, ["time", "evse_address", "power"], rows)


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
def url(fake: FakeApi) -> Iterator[str]:
    with serve(fake) as u:
        yield u


def settings_for(url: str, tmp_path: Path, **kw: object) -> Settings:
    return Settings(
        base_url=url,
        username="demo",
        password="demo-password",  # type: ignore[arg-type]
        lake=str(tmp_path / "lake"),
        max_answer_bytes=LIMIT,
        retry_backoff_s=0.01,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    "make",
    [lambda: Stream(huge(BIG), "close"), lambda: Stream(endless(), "chunked")],
    ids=["300MB-close-delimited", "endless-chunked"],
)
def test_the_client_stops_reading_at_the_limit(fake: FakeApi, url: str, tmp_path: Path, make):
    fake.answer = lambda m, s, e: make()
    with (
        PowerflexClient(settings_for(url, tmp_path)) as client,
        pytest.raises(AnswerTooLargeError) as info,
    ):
        client.get_measurement_data("ct_response", T0, T1)
    msg = info.value.one_line()
    assert "ct_response" in msg and "2021-06-01T00:00:00Z" in msg and "2021-06-01T06:00:00Z" in msg
    assert "POWERFLEX_MAX_ANSWER_BYTES" in msg and "\n" not in msg
    # not retried (retrying cannot make it smaller), and the server was not drained: what
    # it got out is the limit plus what the kernel's socket buffers swallowed
    assert len(fake.windows) == 1
    assert fake.streams[0].sent < LIMIT + 16 * MB


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "make",
    [lambda: Stream(huge(BIG), "close"), lambda: Stream(endless(), "chunked")],
    ids=["300MB-close-delimited", "endless-chunked"],
)
def test_cli_ingest_fails_one_line_small_and_leaves_the_lake_unchanged(
    fake: FakeApi, url: str, tmp_path: Path, make
):
    env = {
        "POWERFLEX_BASE_URL": url,
        "POWERFLEX_USERNAME": "demo",
        "POWERFLEX_PASSWORD": "demo-password",
        "POWERFLEX_LAKE": str(tmp_path / "lake"),
        "POWERFLEX_MAX_ANSWER_BYTES": str(LIMIT),
    }
    args = ["ingest", "--start", T0.isoformat(), "--end", T1.isoformat()]
    args += ["--measurement", "ct_response"]
    fake.answer = good
    first = run_cli(args, env)
    assert first.returncode == 0, first.stderr
    lake = tmp_path / "lake"
    before = {d: digest_tree(lake / d) for d in ("ct_response", "_state", "rejects")}
    assert before["ct_response"]

    fake.answer = lambda m, s, e: make()
    fake.windows.clear()
    proc = run_cli(args, env)
    assert proc.returncode != 0
    line = proc.last_error_line()
    assert line.startswith("powerflex-etl: error:"), proc.stderr
    assert "ct_response" in line and "2021-06-01" in line and "larger than" in line
    assert "POWERFLEX_MAX_ANSWER_BYTES" in line
    assert "Traceback" not in proc.stderr
    # the split gave up at its minimum window: a handful of requests, not an endless loop
    assert 1 < len(fake.windows) <= 12
    shortest = min(e - s for _, s, e in fake.windows)
    assert shortest <= pipeline.MIN_SPLIT_SECONDS
    # the same rows, files and state as before the failed run
    assert {d: digest_tree(lake / d) for d in before} == before
    # peak RSS of the failed run vs the small run: bounded by a few limits, not by the body
    growth_mb = (proc.maxrss_kib - first.maxrss_kib) / 1024
    print(
        f"\nCLI peak RSS: ok run {first.maxrss_kib // 1024} MB, oversized {proc.maxrss_kib // 1024} MB"
    )
    assert growth_mb < 64, (first.maxrss_kib, proc.maxrss_kib)


def _window_lengths(fake: FakeApi) -> list[float]:
    return [e - s for _, s, e in fake.windows]


def test_auto_split_halves_to_the_minimum_window_then_fails_cleanly(
    fake: FakeApi, url: str, tmp_path: Path
):
    # every answer is too large, whatever the window: the split must stop on its own
    fake.answer = lambda m, s, e: Stream(endless(), "chunked")
    s = settings_for(url, tmp_path)
    lake = Lake(s.lake)
    with PowerflexClient(s) as client, pytest.raises(WindowError) as info:
        pipeline.ingest_window(
            client, lake, State(lake), "ct_response", Window(T0, T1), settings=s, run_id="r1"
        )
    assert isinstance(info.value.cause, AnswerTooLargeError)
    lengths = _window_lengths(fake)
    # 6 h, 3 h, ... each the first half (whole seconds) of the one before, down to <= 60 s
    expected = [21600]
    while expected[-1] > pipeline.MIN_SPLIT_SECONDS:
        expected.append(expected[-1] // 2)
    assert lengths == expected
    assert lengths[-1] <= pipeline.MIN_SPLIT_SECONDS < lengths[-2]
    assert "ct_response" in str(info.value) and "\n" not in str(info.value)
    assert not list(Path(s.lake).glob("ct_response/**/*.parquet"))
    assert State(lake).watermark("ct_response") is None


def test_auto_split_recovers_when_the_halves_fit(fake: FakeApi, url: str, tmp_path: Path):
    def answer(m: str, start: float, stop: float) -> bytes | Stream:
        return Stream(endless(), "chunked") if stop - start > 3 * 3600 else good(m, start, stop)

    fake.answer = answer
    s = settings_for(url, tmp_path)
    lake = Lake(s.lake)
    with PowerflexClient(s) as client:
        summary = pipeline.ingest_window(
            client, lake, State(lake), "ct_response", Window(T0, T1), settings=s, run_id="r1"
        )
    assert summary.splits == 1 and summary.rows == 360
    assert lake.read("ct_response").num_rows == 360


def test_a_half_that_stays_too_large_keeps_the_watermark_behind_it(
    fake: FakeApi, url: str, tmp_path: Path
):
    # the first half fits, the second never does: the first half is committed as a whole
    # window of its own; the run fails and the watermark does not pass the failed window
    mid = (T0 + timedelta(hours=3)).timestamp()

    def answer(m: str, start: float, stop: float) -> bytes | Stream:
        return good(m, start, stop) if stop <= mid else Stream(endless(), "chunked")

    fake.answer = answer
    s = settings_for(url, tmp_path)
    lake = Lake(s.lake)
    state = State(lake)
    with PowerflexClient(s) as client:
        result = run_windows(
            [("ct_response", Window(T0, T1))],
            settings=s,
            lake=lake,
            state=state,
            client=client,
            run_id="r1",
        )
    assert not result.ok
    [(_, _, err)] = result.failures
    assert isinstance(err, WindowError) and isinstance(err.cause, AnswerTooLargeError)
    assert lake.read("ct_response").num_rows == 180  # the whole first half, nothing else
    assert state.watermark("ct_response") is None
    records = [json.dumps(str(r.window)) for r in state.committed_windows("ct_response")]
    assert len(records) == 1 and "03:00:00" in records[0]
