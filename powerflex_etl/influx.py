"""Pure: InfluxDB 1.7 ``/query`` JSON (every shape PowerFlex may send) -> one Arrow table. No I/O.

INTERFACE (stub; being implemented). See CONTRACT §1 "Answers to accept".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa


@dataclass(frozen=True)
class BadRow:
    """A delivered row the parser could not trust; it becomes a reject downstream."""

    reason: str
    # the row as one JSON object: field name -> value as delivered (tags merged in)
    raw: str
    # the row's own time in µs since the epoch when that much parsed, else None
    time_us: int | None = None


@dataclass
class ParsedAnswer:
    """An answer as columns, in delivery order (series by series, row by row).

    ``table`` has ``time`` (timestamp[us, UTC], never null) and every delivered field under
    its *source* name in *source* units: known ``id``/``state`` fields as string, known
    ``number``/``bool`` fields as float64, unknown fields as float64 when every value is a
    number else string. Rows that failed (no/unparseable time, a non-number in a number field,
    a wrong-length row) are in ``bad_rows`` instead.
    """

    measurement: str
    table: pa.Table
    bad_rows: list[BadRow] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return self.table.num_rows + len(self.bad_rows)


def parse_answer(body: bytes, measurement: str) -> ParsedAnswer:
    """Parse a whole answer body.

    Raises ``ParseError`` (malformed/truncated), ``AnswerErrorReported`` (statement or
    top-level ``error``), ``PartialAnswerError`` (a final ``partial: true``: cut answer).
    """
    raise NotImplementedError
