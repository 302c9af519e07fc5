"""What the parser hands to normalize: one representation, declared once.

An answer is typed once, by the parser, and keeps that form through normalize's window,
scope, validation, dedup and reordering: times as int64 µs (numpy), text (ids, labels,
unknown text fields) dictionary-encoded, numbers as float64, untrusted rows as
:class:`BadRow`. Only the lake table at the very end gets the lake's types (a timestamp
column viewed over the µs, plain strings).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from powerflex_etl.errors import ParseError
from powerflex_etl.schemas import SPECS, TEXT_TYPE, TIME, TIME_TYPE, is_text, plain, source_kinds

# text is schemas.TEXT_TYPE: ids repeat a lot (a few dozen EVSEs, sites, states); as
# dictionaries, checks run once per distinct value and reordering moves small integers
NUMBER_TYPE = pa.float64()


class BadRow(NamedTuple):
    """A delivered row that cannot be trusted; it becomes a reject downstream."""

    reason: str
    # the row as one JSON object: field name -> value as delivered (tags merged in)
    raw: str
    # the row's own time in µs since the epoch when that much parsed, else None
    time_us: int | None = None


def time_column(us: np.ndarray) -> pa.Array:
    """int64 µs since the epoch as a ``timestamp[us, UTC]`` column (a view, not a copy)."""
    return pa.array(np.ascontiguousarray(us, dtype=np.int64), type=pa.int64()).view(TIME_TYPE)


@dataclass
class ParsedAnswer:
    """An answer as columns, in delivery order (series by series, row by row).

    ``time_us`` holds each row's time (int64 µs since the epoch, UTC); ``fields`` every
    delivered field under its *source* name in *source* units, one row per time: known
    ``id``/``state`` fields as :data:`TEXT_TYPE`, known ``number``/``bool`` fields as float64,
    unknown fields as float64 when every value is a number else :data:`TEXT_TYPE`. Rows that
    failed (no/unparseable time, a non-number in a number field, a wrong-length row) are in
    ``bad_rows`` instead. Raises ``TypeError`` when the columns are not typed so: normalize
    trusts these types and casts nothing but text, once, at the end.
    """

    measurement: str
    time_us: np.ndarray
    fields: pa.Table
    bad_rows: list[BadRow] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.time_us.dtype != np.int64 or self.time_us.ndim != 1:
            raise TypeError(
                f"{self.measurement}: time_us must be 1-d int64, not "
                f"{self.time_us.ndim}-d {self.time_us.dtype}"
            )
        if len(self.time_us) != self.fields.num_rows:
            raise TypeError(
                f"{self.measurement}: {len(self.time_us)} times for {self.fields.num_rows} rows"
            )
        kinds = source_kinds(self.measurement) if self.measurement in SPECS else {}
        for f in self.fields.schema:
            kind = kinds.get(f.name)
            want = (
                TEXT_TYPE
                if kind in ("id", "state")
                else NUMBER_TYPE
                if kind in ("number", "bool")
                else None
            )
            # text is checked by value (unsafe ids) only in its dictionary form
            if (
                f.name == TIME
                or (want is not None and f.type != want)
                or (want is None and is_text(f.type) and f.type != TEXT_TYPE)
            ):
                raise TypeError(
                    f"{self.measurement}: field {f.name!r} is {f.type}, not as the parser types it"
                )

    @property
    def n_rows(self) -> int:
        """Every delivered row: the typed ones and the bad ones."""
        return self.fields.num_rows + len(self.bad_rows)

    @property
    def table(self) -> pa.Table:
        """``time`` and the fields as one table in the lake's types (timestamp, plain strings).

        Built on each access, for people and tests reading an answer; normalize never needs it.
        """
        names = self.fields.column_names
        texts = [plain(c) for c in self.fields.columns]
        schema = pa.schema(
            [pa.field(TIME, TIME_TYPE, nullable=False)]
            + [pa.field(name, c.type) for name, c in zip(names, texts, strict=True)]
        )
        return pa.Table.from_arrays([time_column(self.time_us), *texts], schema=schema)

    @classmethod
    def from_table(
        cls, measurement: str, table: pa.Table, bad_rows: Iterable[BadRow] = ()
    ) -> ParsedAnswer:
        """Type a hand-built table (``time`` as any timestamp, fields in source names) as the
        parser does: times truncated to µs, text dictionary-encoded, known numbers and
        all-null fields as float64. For inputs that do not come from :func:`parse_answer`.
        """
        kinds = source_kinds(measurement) if measurement in SPECS else {}
        if TIME in table.column_names:
            t = table[TIME]
            t = t if t.type == TIME_TYPE else pc.cast(t, TIME_TYPE, safe=False)
            if t.null_count:
                raise ParseError(
                    f"{measurement}: parsed table has null times", measurement=measurement
                )
            us = t.combine_chunks().cast(pa.int64()).to_numpy(zero_copy_only=False)
        elif table.num_rows == 0:
            # an answer with no rows at all may come without any column
            us = np.zeros(0, dtype=np.int64)
        else:
            raise ParseError(
                f"{measurement}: parsed table has no time column", measurement=measurement
            )
        # a table without columns still has rows: set columns in place, never rebuild it
        fields = table.drop_columns([TIME]) if TIME in table.column_names else table
        for i, name in enumerate(fields.column_names):
            col = fields[name].combine_chunks()
            kind = kinds.get(name)
            try:
                if kind in ("id", "state") or is_text(col.type):
                    if col.type != TEXT_TYPE:
                        col = plain(col).cast(pa.string()).dictionary_encode()
                elif kind in ("number", "bool") or pa.types.is_null(col.type):
                    col = col.cast(NUMBER_TYPE)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
                raise ParseError(
                    f"{measurement}: field {name!r} of type {col.type} cannot be read: {err}",
                    measurement=measurement,
                )
            fields = fields.set_column(i, name, col)
        return cls(measurement, np.asarray(us, dtype=np.int64), fields, list(bad_rows))
