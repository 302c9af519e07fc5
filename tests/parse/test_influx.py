"""parse_answer on real InfluxDB bodies and hand-made PowerFlex answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from powerflex_etl.errors import AnswerErrorReported, ParseError, PartialAnswerError
from powerflex_etl.parse.answer import BadRow, ParsedAnswer, parse_answer
from powerflex_etl.schemas import TIME_TYPE

REAL = Path("/work/shared/data/real/influxdb_v1")
if not REAL.is_dir():  # a clone elsewhere keeps the same layout beside the repo
    REAL = Path(__file__).resolve().parents[3] / "shared/data/real/influxdb_v1"
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="real InfluxDB samples not present")


def real(name: str, measurement: str = "ct_response") -> ParsedAnswer:
    return parse_answer((REAL / name).read_bytes(), measurement)


def col(parsed: ParsedAnswer, name: str) -> list[Any]:
    return parsed.table.column(name).to_pylist()


def times_us(parsed: ParsedAnswer) -> list[int]:
    return parsed.table.column("time").cast(pa.int64()).to_pylist()


def us(text: str) -> int:
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def answer(*series: dict[str, Any], wrap: bool = False) -> bytes:
    doc: dict[str, Any] = {"results": [{"statement_id": 0, "series": list(series)}]}
    return json.dumps({"data": doc} if wrap else doc).encode()


# --- real bodies ---------------------------------------------------------------------------


@needs_real
def test_docs_select_gives_two_rows_with_null_then_text_tag() -> None:
    p = real("docs17_api_select.json")
    assert p.table.column_names == ["time", "myfield", "mytag1", "mytag2"]
    assert times_us(p) == [us("2017-03-01T00:16:18Z"), us("2017-03-01T00:17:18Z")]
    assert col(p, "myfield") == [33.1, 12.4]
    assert col(p, "mytag1") == [None, "12"]
    assert p.table.schema.field("mytag1").type == pa.string()
    assert p.bad_rows == []


@needs_real
def test_pretty_and_epoch_forms_equal_the_plain_select() -> None:
    plain = real("docs17_api_select.json").table
    assert real("docs17_api_select_pretty.json").table.equals(plain)
    assert real("docs17_api_select_epoch_s.json").table.equals(plain)


@needs_real
def test_time_column_is_utc_microseconds_and_never_null() -> None:
    field = real("docs17_api_select.json").table.schema.field("time")
    assert field.type == TIME_TYPE
    assert not field.nullable


@needs_real
def test_nanosecond_rfc3339_is_truncated_to_microseconds() -> None:
    p = real("docs17_querying_single_statement_pretty.json")
    assert times_us(p)[:2] == [us("2015-01-29T21:55:43.702900Z")] * 2
    # an integer where a float is documented is still a float
    assert col(p, "value") == [2.0, 0.55, 0.64]


@needs_real
def test_multi_statement_rows_follow_statement_order() -> None:
    p = real("docs17_api_multi_statement_epoch_s.json")
    assert times_us(p) == [1488327378_000000, 1488327438_000000, 0]
    assert col(p, "myfield") == [33.1, 12.4, None]
    assert col(p, "mean") == [None, None, 22.75]
    q = real("docs17_querying_multiple_statements_pretty.json")
    assert col(q, "count") == [None, None, None, 3.0]


@needs_real
def test_chunked_answer_equals_the_unchunked_one() -> None:
    chunked = real("influxdb_test_chunked_chunk_size_1.jsonl")
    assert chunked.table.equals(real("influxdb_test_not_chunked.json").table)
    assert chunked.table.num_rows == 2


@needs_real
def test_series_tags_are_merged_into_rows() -> None:
    p = real("influxdb_test_series_with_tags.json")
    assert p.table.column_names == ["time", "max", "host"]
    assert col(p, "host") == ["localhost"]
    assert col(p, "max") == [98.9]


@needs_real
def test_series_named_differently_is_kept() -> None:
    p = real("docs17_api_select_into.json")
    assert col(p, "written") == [2.0]


@needs_real
def test_empty_result_gives_zero_rows() -> None:
    p = real("docs17_api_create_database_empty_result.json")
    assert p.n_rows == 0
    assert p.table.column_names == ["time"]


@needs_real
@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("docs17_api_statement_error_db_not_found_http200.json", "database not found: mydb1"),
        ("docs17_api_parse_error_http400.json", "error parsing query: found EOF"),
        ("docs17_api_auth_failed_http401.json", "authorization failed"),
    ],
)
def test_reported_errors_raise_naming_the_measurement(name: str, quoted: str) -> None:
    with pytest.raises(AnswerErrorReported) as info:
        real(name, "evse_request")
    assert "evse_request" in str(info.value)
    assert quoted in str(info.value)
    assert "\n" not in info.value.one_line()


@needs_real
def test_csv_body_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="ct_response"):
        real("docs17_api_select_csv.csv")


# --- PowerFlex-shaped answers --------------------------------------------------------------

CT_COLUMNS = ["time", "acc_id", "evse_address", "charging_state", "energy_delivered", "voltage"]


def test_wrapped_answer_keeps_ids_as_sent_and_numbers_as_floats() -> None:
    body = answer(
        {
            "name": "ct_response",
            "columns": CT_COLUMNS,
            "values": [
                [1566333668.5, "03", "0001-03-01-02", "ADAPTIVE", 1200, 208123.5],
                [1566333669, 3, "0001-03-01-02", None, None, 208000],
            ],
        },
        wrap=True,
    )
    p = parse_answer(body, "ct_response")
    assert times_us(p) == [1566333668_500000, 1566333669_000000]
    assert col(p, "acc_id") == ["03", "3"]
    assert col(p, "charging_state") == ["ADAPTIVE", None]
    assert col(p, "energy_delivered") == [1200.0, None]
    assert col(p, "voltage") == [208123.5, 208000.0]
    assert p.table.schema.field("acc_id").type == pa.string()
    assert p.table.schema.field("energy_delivered").type == pa.float64()


def test_epoch_float_time_is_exact_to_the_microsecond() -> None:
    body = answer({"columns": ["time", "power"], "values": [[1566333668.123456, 1.5]]})
    assert times_us(parse_answer(body, "ct_response")) == [1566333668_123456]


def test_rfc3339_offsets_are_converted_to_utc() -> None:
    body = answer(
        {
            "columns": ["time", "power"],
            "values": [["2019-08-20T22:41:08.1234567+02:00", 1], ["2019-08-20T20:41:08Z", 2]],
        }
    )
    expected = [us("2019-08-20T20:41:08.123456Z"), us("2019-08-20T20:41:08Z")]
    assert times_us(parse_answer(body, "ct_response")) == expected


def test_reordered_columns_several_series_and_tags_keep_delivery_order() -> None:
    body = answer(
        {
            "name": "evse_response",
            "tags": {"evse_address": "A", "acc_id": "03"},
            "columns": ["connected", "time", "mamps_last"],
            "values": [[1, 10, 16000], [0, 11, None]],
        },
        {
            "name": "evse_response",
            "tags": {"evse_address": "B"},
            "columns": ["time", "acc_id", "contactor"],
            "values": [[5, "04", 1]],
        },
    )
    p = parse_answer(body, "evse_response")
    assert times_us(p) == [10_000000, 11_000000, 5_000000]
    assert col(p, "evse_address") == ["A", "A", "B"]
    assert col(p, "acc_id") == ["03", "03", "04"]
    assert col(p, "connected") == [1.0, 0.0, None]
    assert col(p, "contactor") == [None, None, 1.0]
    assert col(p, "mamps_last") == [16000.0, None, None]


def test_unknown_fields_are_numbers_when_all_numbers_else_text() -> None:
    body = answer(
        {"columns": ["time", "extra_n", "extra_s"], "values": [[1, 2, "a"], [2, 2.5, 3]]},
        {"columns": ["time", "extra_s"], "values": [[3, True], [4, {"k": [1]}], [5, None]]},
    )
    p = parse_answer(body, "ct_response")
    assert p.table.schema.field("extra_n").type == pa.float64()
    assert col(p, "extra_n") == [2.0, 2.5, None, None, None]
    assert col(p, "extra_s") == ["a", "3", "true", '{"k":[1]}', None]


def test_unknown_measurement_treats_every_field_as_unknown() -> None:
    body = answer({"columns": ["time", "acc_id"], "values": [[1, 3]]})
    assert col(parse_answer(body, "not_a_measurement"), "acc_id") == [3.0]


# --- bad rows ------------------------------------------------------------------------------


def parse_rows(rows: list[list[Any]], tags: dict[str, Any] | None = None) -> ParsedAnswer:
    series: dict[str, Any] = {"columns": ["time", "acc_id", "power"], "values": rows}
    if tags:
        series["tags"] = tags
    return parse_answer(answer(series), "ct_response")


@pytest.mark.parametrize(
    ("row", "reason", "time_us"),
    [
        ([None, "03", 1.0], "no time", None),
        (["yesterday", "03", 1.0], "unparseable time", None),
        (["2019-08-20T20:41:08", "03", 1.0], "unparseable time", None),  # no offset
        ([True, "03", 1.0], "unparseable time", None),
        ([1e12, "03", 1.0], "time out of range", None),
        ([1566333668, "03", "1.5"], "power is not a number", 1566333668_000000),
        ([1566333668, "03", True], "power is not a number", 1566333668_000000),
        ([1566333668, "03", {"v": 1}], "power is not a number", 1566333668_000000),
        ([1566333668, "03"], "row has 2 cells for 3 columns", None),
        ([1566333668, "03", 1.0, 2.0], "row has 4 cells for 3 columns", None),
    ],
)
def test_untrustworthy_rows_go_to_bad_rows_not_the_table(
    row: list[Any], reason: str, time_us: int | None
) -> None:
    p = parse_rows([[1566333667, "03", 2.0], row, [1566333669, "04", 3.0]])
    assert col(p, "acc_id") == ["03", "04"]
    assert col(p, "power") == [2.0, 3.0]
    assert len(p.bad_rows) == 1
    bad = p.bad_rows[0]
    assert bad.reason == reason
    assert bad.time_us == time_us
    assert isinstance(json.loads(bad.raw), dict)


def test_bad_row_raw_is_the_delivered_row_with_tags_in_column_order() -> None:
    p = parse_rows([[1566333668, 3, "x"]], tags={"evse_address": "E1"})
    assert p.table.num_rows == 0
    assert p.bad_rows == [
        BadRow(
            "power is not a number",
            '{"time":1566333668,"acc_id":3,"power":"x","evse_address":"E1"}',
            1566333668_000000,
        )
    ]


def test_the_same_bad_row_gives_the_same_raw_whatever_comes_with_it() -> None:
    row = [1566333668.25, 3, "x"]
    alone = parse_rows([row]).bad_rows
    crowded = parse_rows([[1, "01", 1], row, [2, "02", None], [None, "03", 1]]).bad_rows
    assert alone[0] == crowded[0]


def test_a_number_beyond_float_range_is_a_bad_row() -> None:
    body = b'{"results":[{"series":[{"columns":["time","power"],"values":[[1,1e400],[2,5]]}]}]}'
    p = parse_answer(body, "ct_response")
    assert col(p, "power") == [5.0]
    assert [b.reason for b in p.bad_rows] == ["a number is out of range"]
    assert json.loads(p.bad_rows[0].raw) == {"time": 1, "power": float("inf")}


def test_good_rows_are_the_same_whether_or_not_the_series_has_bad_ones() -> None:
    good = [[1566333668.000001, 7, 1], [1566333669, "08", 2.5]]
    clean = parse_rows(good)
    mixed = parse_rows([good[0], [None, "x", 1], good[1]])
    assert mixed.table.equals(clean.table)


# --- errors --------------------------------------------------------------------------------


def test_final_partial_document_means_the_answer_was_cut() -> None:
    first = {"results": [{"series": [{"columns": ["time"], "values": [[1]], "partial": True}]}]}
    last = {"results": [{"series": [{"columns": ["time"], "values": [[2]]}], "partial": True}]}
    body = (json.dumps(first) + "\n" + json.dumps(last)).encode()
    with pytest.raises(PartialAnswerError, match="evse_request"):
        parse_answer(body, "evse_request")
    # partial on every chunk but the last is the normal chunked stream
    last["results"][0].pop("partial")
    assert parse_answer((json.dumps(first) + "\n" + json.dumps(last)).encode(), "x").n_rows == 2


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"", "empty"),
        (b'{"results":[{"series":[{"columns":["time"],"values":[[1],[2', "malformed"),
        (b"[1, 2]", "not an InfluxDB answer"),
        (b"{}", 'no "results"'),
        (b'{"results":[{"series":[{"columns":["power"],"values":[]}]}]}', 'no "time"'),
        (b'{"results":[{"series":[{"columns":["time"],"values":{"a":1}}]}]}', "not a list"),
        (b'{"results":[{"series":[{"columns":["time"],"values":[1, 2]}]}]}', "row 0 is not a list"),
        (b'{"results":[{"series":[{"columns":["time","a","a"],"values":[]}]}]}', "repeats"),
        (b'{"results":[{"series":[{"columns":["time"]}]}]}\n{"results":', "line 2"),
        (
            b'{"results":[{"series":[{"columns":["time","power"],"values":[[1,NaN]]}]}]}',
            "malformed",
        ),
    ],
)
def test_unreadable_answers_raise_one_line_parse_errors(body: bytes, says: str) -> None:
    with pytest.raises(ParseError) as info:
        parse_answer(body, "ct_response")
    msg = info.value.one_line()
    assert "ct_response" in msg
    assert says in msg
    assert "\n" not in msg


def test_reported_error_text_is_redacted() -> None:
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIz"
    body = json.dumps({"error": f"bad token Bearer {token}"}).encode()
    with pytest.raises(AnswerErrorReported) as info:
        parse_answer(body, "ct_response")
    assert token not in str(info.value)


def test_big_series_decoded_in_chunks_give_the_same_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from powerflex_etl.parse import series as influx_series

    rows = [[1566333668 + i, f"{i % 3:02d}", i * 1.5, {"i": i} if i % 4 else i] for i in range(9)]
    body = answer({"columns": ["time", "acc_id", "power", "extra"], "values": rows})
    whole = parse_answer(body, "ct_response")
    monkeypatch.setattr(influx_series, "_SPLIT_BYTES", 0)
    monkeypatch.setattr(influx_series, "_CHUNK_ROWS", 2)
    chunked = parse_answer(body, "ct_response")
    assert chunked.table.equals(whole.table)
    assert col(chunked, "acc_id")[:4] == ["00", "01", "02", "00"]
    assert col(chunked, "extra")[:2] == ["0", '{"i":1}']
    # a bad row in a later chunk: only that chunk goes down the per-row path, same result
    rows[7][2] = "x"
    body = answer({"columns": ["time", "acc_id", "power", "extra"], "values": rows})
    assert [b.reason for b in parse_answer(body, "ct_response").bad_rows] == [
        "power is not a number"
    ]
    assert parse_answer(body, "ct_response").table.num_rows == 8


def test_parsing_leaves_the_garbage_collector_as_it_found_it() -> None:
    import gc

    assert gc.isenabled()
    parse_rows([[1, "03", 1.0]])
    with pytest.raises(ParseError):
        parse_answer(b"{", "ct_response")
    assert gc.isenabled()
    gc.disable()
    try:
        parse_rows([[1, "03", 1.0]])
        assert not gc.isenabled()
    finally:
        gc.enable()
