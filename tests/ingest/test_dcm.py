"""DCM snapshots: answer -> Arrow conversion, validation, all-or-nothing writes, lake acc_ids.

The answers are the vendor's own examples (data/real/powerflex/powerflex_api_public_doc_extract.json).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from powerflex_etl.errors import ConfigError, ParseError, PowerflexError
from powerflex_etl.ingest import dcm as dcm_snapshot
from powerflex_etl.lake.store import Lake
from powerflex_etl.parse import dcm
from powerflex_etl.schemas import DCM_SCHEMAS, arrow_schema

AT = datetime(2024, 6, 3, 12, 30, tzinfo=UTC)
DOC = Path("/work/shared/data/real/powerflex/powerflex_api_public_doc_extract.json")


def _doc_example(endpoint: str, index: int = 0) -> dict[str, Any]:
    """The vendor's documented answer for an endpoint (falls back to a transcription of it)."""
    if DOC.exists():
        doc = json.loads(DOC.read_text())
        for ep in _walk_endpoints(doc):
            if ep.get("name") == endpoint:
                return dict(ep["examples"][index]["returns"])
    if endpoint == "get_external_signal":
        sig = {
            "is_enabled": True,
            "max_load": 21.616,
            "max_load_unit": "kW",
            "name": "DCM_EVSE_Allocation",
        }
        return {"DCM_EVSE_Allocation": sig} if index == 0 else sig
    return {m: 200 for m in dcm.MONTHS} | {"Feb": 123}


def _walk_endpoints(node: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        if "name" in node and "examples" in node:
            found.append(node)
        for v in node.values():
            found += _walk_endpoints(v)
    elif isinstance(node, list):
        for v in node:
            found += _walk_endpoints(v)
    return found


class FakeClient:
    """Answers as configured per acc_id; records calls."""

    def __init__(self, signals: dict[str, Any], targets: dict[str, Any]) -> None:
        self.signals = signals
        self.targets = targets
        self.calls: list[tuple[str, str]] = []

    def get_external_signal(self, acc_id: str | int, name: str | None = None) -> dict[str, Any]:
        self.calls.append(("signals", str(acc_id)))
        return self.signals[str(acc_id)]  # type: ignore[no-any-return]

    def get_target_peak_power(self, acc_id: str | int) -> dict[str, int]:
        self.calls.append(("targets", str(acc_id)))
        return self.targets[str(acc_id)]  # type: ignore[no-any-return]


class RecordingLake:
    url = "memory://unused"

    def __init__(self) -> None:
        self.files: dict[tuple[str, str], pa.Table] = {}

    def write_snapshot(
        self, name: str, table: pa.Table, key: str, *, at: datetime | None = None
    ) -> str:
        assert at == AT
        self.files[(name, key)] = table
        return f"{name}/date={AT:%Y-%m-%d}/snap-{key}.parquet"


def test_vendor_signal_example_becomes_one_row_with_the_contract_schema() -> None:
    t = dcm.external_signals_table("03", _doc_example("get_external_signal"), run_id="r1", at=AT)
    assert t.schema == DCM_SCHEMAS["external_signals"]
    assert t.to_pylist() == [
        {
            "snapshot_at": AT,
            "acc_id": "03",
            "name": "DCM_EVSE_Allocation",
            "max_load": 21.616,
            "max_load_unit": "kW",
            "is_enabled": True,
            "_run_id": "r1",
        }
    ]


def test_single_signal_answer_is_accepted_too() -> None:
    t = dcm.external_signals_table("1", _doc_example("get_external_signal", 1), run_id="r", at=AT)
    assert t.column("name").to_pylist() == ["DCM_EVSE_Allocation"]


def test_vendor_target_example_gives_twelve_months_in_calendar_order() -> None:
    t = dcm.target_peak_power_table(
        "02", _doc_example("get_target_peak_power_kW"), run_id="r", at=AT
    )
    assert t.schema == DCM_SCHEMAS["target_peak_power"]
    assert t.column("month").to_pylist() == list(dcm.MONTHS)
    assert t.column("month_num").to_pylist() == list(range(1, 13))
    targets = dict(
        zip(
            t.column("month").to_pylist(), t.column("target_peak_power_kw").to_pylist(), strict=True
        )
    )
    assert targets["Feb"] == 123.0 and targets["Jan"] == 200.0
    assert set(t.column("acc_id").to_pylist()) == {"02"}


def test_naive_snapshot_time_is_taken_as_utc() -> None:
    t = dcm.target_peak_power_table("02", {"Jan": 1}, run_id="r", at=AT.replace(tzinfo=None))
    assert t.column("snapshot_at").to_pylist() == [AT]


@given(
    st.dictionaries(
        st.sampled_from(dcm.MONTHS),
        st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False)),
    )
)
def test_any_valid_month_subset_round_trips(months: dict[str, float]) -> None:
    t = dcm.target_peak_power_table("07", months, run_id="r", at=AT)
    got = dict(
        zip(
            t.column("month").to_pylist(), t.column("target_peak_power_kw").to_pylist(), strict=True
        )
    )
    assert got == {m: float(v) for m, v in months.items()}
    assert t.column("month_num").to_pylist() == sorted(dcm.MONTHS.index(m) + 1 for m in months)


@given(st.text(min_size=1, max_size=12))
def test_unknown_month_names_fail_naming_acc_id_and_endpoint(name: str) -> None:
    if name.strip().lower() in {m.lower() for m in dcm.MONTHS}:
        return
    with pytest.raises(ParseError) as exc:
        dcm.target_peak_power_table("03", {name: 100}, run_id="r", at=AT)
    msg = str(exc.value)
    assert "acc_id 03" in msg and "get_target_peak_power_kW" in msg and "month" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("value", ["700", "lots", True, [1], {"kW": 1}, float("nan"), -5])
def test_non_numeric_or_negative_targets_fail(value: object) -> None:
    with pytest.raises(ParseError, match=r"acc_id 03 get_target_peak_power_kW: Jun"):
        dcm.target_peak_power_table("03", {"Jun": value}, run_id="r", at=AT)


@pytest.mark.parametrize(
    ("signal", "reason"),
    [
        ({"name": "S", "max_load": "21.6", "max_load_unit": "kW", "is_enabled": True}, "max_load"),
        ({"name": "S", "max_load": 21.6, "max_load_unit": "W", "is_enabled": True}, "unit"),
        ({"name": "S", "max_load": 21.6, "max_load_unit": "kW", "is_enabled": "yes"}, "is_enabled"),
    ],
)
def test_bad_signal_values_fail_naming_acc_id_and_endpoint(signal: dict, reason: str) -> None:
    with pytest.raises(ParseError, match=rf"acc_id 03 get_external_signal: .*{reason}"):
        dcm.external_signals_table("03", {"S": signal}, run_id="r", at=AT)


def test_non_object_answers_fail() -> None:
    with pytest.raises(ParseError, match="get_external_signal"):
        dcm.external_signals_table("03", ["x"], run_id="r", at=AT)
    with pytest.raises(ParseError, match="get_target_peak_power_kW"):
        dcm.target_peak_power_table("03", "Jan", run_id="r", at=AT)


def test_snapshot_writes_one_file_per_table_and_acc_id_with_string_ids() -> None:
    client = FakeClient(
        {"03": _doc_example("get_external_signal"), "11": {}},
        {"03": _doc_example("get_target_peak_power_kW"), "11": {"Jan": 50}},
    )
    lake = RecordingLake()
    out = dcm_snapshot.snapshot(client, lake, ["03", "11", "03"], run_id="run-1", at=AT)  # type: ignore[arg-type]
    assert out["acc_ids"] == ["03", "11"]
    assert out["external_signals"] == 1 and out["target_peak_power"] == 13
    assert sorted(lake.files) == sorted(
        (name, f"20240603T123000000000Z-acc{a}-run-1")
        for name in ("external_signals", "target_peak_power")
        for a in ("03", "11")
    )
    ids = {t.column("acc_id")[0].as_py() for t in lake.files.values() if t.num_rows}
    assert ids == {"03", "11"}


def test_a_bad_answer_for_any_acc_id_writes_nothing() -> None:
    client = FakeClient(
        {"03": _doc_example("get_external_signal"), "04": {}},
        {"03": _doc_example("get_target_peak_power_kW"), "04": {"Juni": 5}},
    )
    lake = RecordingLake()
    with pytest.raises(ParseError, match="acc_id 04"):
        dcm_snapshot.snapshot(client, lake, ["03", "04"], run_id="r", at=AT)  # type: ignore[arg-type]
    assert lake.files == {}


@pytest.mark.parametrize("bad", ["../x", "", "a/b", ".hidden", "x" * 65, "03 "])
def test_unsafe_acc_ids_are_refused_before_any_call(bad: str) -> None:
    client = FakeClient({}, {})
    with pytest.raises(ConfigError):
        dcm_snapshot.snapshot(client, RecordingLake(), [bad], run_id="r", at=AT)  # type: ignore[arg-type]
    assert client.calls == []


def test_no_acc_ids_is_a_clear_error() -> None:
    with pytest.raises(PowerflexError, match="no acc_id"):
        dcm_snapshot.snapshot(FakeClient({}, {}), RecordingLake(), [], run_id="r", at=AT)  # type: ignore[arg-type]


def _ct_file(path: Path, acc_ids: list[str | None]) -> None:
    schema = arrow_schema("ct_response")
    n = len(acc_ids)
    cols: dict[str, pa.Array] = {}
    for f in schema:
        if f.name == "time":
            cols[f.name] = pa.array([AT] * n, f.type)
        elif f.name == "acc_id":
            cols[f.name] = pa.array(acc_ids, f.type)
        else:
            cols[f.name] = pa.nulls(n, f.type)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols, schema=schema), path)


def test_acc_ids_in_lake_reads_distinct_string_ids(tmp_path: Path) -> None:
    _ct_file(tmp_path / "ct_response/date=2024-06-01/part-00.parquet", ["03", "03", None])
    _ct_file(tmp_path / "ct_response/date=2024-06-02/part-06.parquet", ["10", "3"])
    # a half-written staging file is not the lake's
    _ct_file(tmp_path / "ct_response/date=2024-06-02/.part-12.parquet.tmp.parquet", ["99"])
    assert Lake(str(tmp_path)).acc_ids() == ["03", "10", "3"]


def test_acc_ids_in_an_empty_lake_is_empty(tmp_path: Path) -> None:
    assert Lake(str(tmp_path)).acc_ids() == []
    assert Lake(str(tmp_path / "missing")).acc_ids() == []
