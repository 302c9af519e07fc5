"""The lake's layout: every path, glob and file-name rule, in one place (pure, no I/O).

::

    <lake>/<measurement>/date=YYYY-MM-DD/part-HH.parquet          6-hour slots, HH in 00,06,12,18
    <lake>/rejects/<measurement>/date=YYYY-MM-DD/part-HH.parquet
    <lake>/<snapshot table>/date=YYYY-MM-DD/snap-<key>.parquet
    <lake>/_state/watermarks/<measurement>.json
    <lake>/_state/windows/<measurement>/<start>--<end>.json       start/end as :func:`stamp`
    <lake>/_staging/<measurement>/<run>-<id>/...                   private, then os.replace
    <lake>/_locks/<measurement>.lock
    <lake>/_state/pending/<measurement>/<token>.json             a commit the marts do not show yet
    <lake>/_state/marts.json                                      the derived tables' manifest
    <lake>/_derived/kept/date=YYYY-MM-DD/part-HH.parquet         a ct_response slot's plug-in rows
    <lake>/_derived/<table>/<period>/<generation>.parquet        derived tables (immutable files)
    <lake>/powerflex.duckdb   <lake>/sites.toml

Functions here return a path as a tuple of components relative to the lake (``Root.path``
joins and checks them) or a glob in the same form. Two sets of files matter to readers:

* a table's **data files** (:func:`data_glob`): every ``*.parquet`` directly inside a
  ``date=`` partition whose name does not start with ``.`` or ``_``. This is what DuckDB's
  views read and what ``state show`` counts; the glob means the same to DuckDB, fsspec and
  Python's ``glob`` (which would skip hidden names by itself, the other two would not).
* its **slot files** (:func:`slot_glob`): the ``part-*.parquet`` files that commits read and
  merge. Any other data file is foreign and ``compact`` folds it into its slot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, date, datetime

from powerflex_etl.errors import LakeError
from powerflex_etl.schemas import LAKE_TABLES
from powerflex_etl.windows import Window, as_utc, from_us, to_us

Parts = tuple[str, ...]

SLOT_HOURS = 6
SLOT_US = SLOT_HOURS * 3600 * 1_000_000
#: the file names a slot file can have: part-00/06/12/18.parquet
SLOT_NAMES: frozenset[str] = frozenset(f"part-{h:02d}.parquet" for h in range(0, 24, SLOT_HOURS))

REJECTS = "rejects"
STATE = "_state"
STAGING = "_staging"
LOCKS = "_locks"
DERIVED = "_derived"
KEPT = "kept"
CATALOG_NAME = "powerflex.duckdb"
SITES_NAME = "sites.toml"

_DATE_PREFIX = "date="
PARTITION_GLOB = "date=*"
# a hidden or underscore-prefixed file is someone's temporary, not the lake's
DATA_FILE_GLOB = "[!._]*.parquet"
SLOT_FILE_GLOB = "part-*.parquet"
_SLOT_NAME = re.compile(r"^part-(?P<hour>[0-9]{2})\.parquet$")

# one path component built by the lake: names, date=YYYY-MM-DD, part-HH.parquet, keys
_SAFE_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.=+\-]{0,199}$")


def safe_part(part: str, *, what: str = "path component") -> str:
    """``part`` if it is one harmless path component; LakeError otherwise."""
    if not _SAFE_PART.match(part) or part in (".", "..") or ".." in part:
        raise LakeError(f"unsafe {what} {part!r}: only letters, digits and _ . = + - allowed")
    return part


def safe_token(text: str, *, max_len: int = 64) -> str:
    """Squash free text (a run id) into a harmless path component."""
    token = re.sub(r"[^A-Za-z0-9_\-]", "_", text)[:max_len].strip("_")
    return token or "run"


def check_table(name: str) -> str:
    """``name`` if it is a lake table (``schemas.LAKE_TABLES``); LakeError otherwise."""
    if name not in LAKE_TABLES:
        raise LakeError(f"unknown lake table {name!r}; use one of {', '.join(LAKE_TABLES)}")
    return name


# -- partitions and slots ------------------------------------------------------------------
def date_dir(day: date) -> str:
    """The partition directory of a UTC day: ``date=YYYY-MM-DD``."""
    return f"{_DATE_PREFIX}{day:%Y-%m-%d}"


def parse_date_dir(name: str) -> date | None:
    """The day of a ``date=YYYY-MM-DD`` directory name; None for anything else."""
    if not name.startswith(_DATE_PREFIX):
        return None
    try:
        return date.fromisoformat(name[len(_DATE_PREFIX) :])
    except ValueError:
        return None  # not ours: leave it alone


def slot_of(us: int) -> int:
    """Start (µs since the epoch) of the 6-hour UTC slot holding instant ``us``."""
    return us // SLOT_US * SLOT_US


def slot_starts(window: Window) -> list[int]:
    """Start (µs since the epoch) of every 6-hour UTC slot the window touches."""
    return list(range(slot_of(window.start_us), window.end_us, SLOT_US))


def slot_parts(us: int) -> tuple[str, str]:
    """``("date=YYYY-MM-DD", "part-HH.parquet")`` of the slot holding instant ``us``."""
    start = from_us(slot_of(us))
    return date_dir(start.date()), f"part-{start:%H}.parquet"


def slot_start(day: date, name: str) -> int | None:
    """The slot start (µs) of slot file ``name`` in ``day``'s partition; None if not a slot name."""
    if name not in SLOT_NAMES:
        return None
    m = _SLOT_NAME.match(name)
    assert m is not None  # every SLOT_NAMES entry matches
    return to_us(datetime(day.year, day.month, day.day, int(m["hour"]), tzinfo=UTC))


def day_start(day: date) -> int:
    """Start (µs since the epoch) of a UTC day."""
    return to_us(datetime(day.year, day.month, day.day, tzinfo=UTC))


# -- tables: where their files are -----------------------------------------------------------
def table_dir(name: str, measurement: str | None = None) -> Parts:
    """A table's directory: ``(name,)``, or ``("rejects", m)`` for one measurement's rejects.

    ``measurement`` only narrows ``"rejects"``; ``"*"`` stands for every measurement.
    """
    check_table(name)
    if name != REJECTS:
        return (name,)
    return (REJECTS, "*" if measurement is None else _measurement(measurement))


def slot_file(directory: Sequence[str], slot_us: int) -> Parts:
    """The slot file of ``slot_us`` under a table directory (from :func:`table_dir`)."""
    return (*directory, *slot_parts(slot_us))


def data_glob(name: str, measurement: str | None = None, partition: str = PARTITION_GLOB) -> Parts:
    """The glob of a table's data files (see the module docstring), optionally one partition."""
    return (*table_dir(name, measurement), partition, DATA_FILE_GLOB)


def slot_glob(name: str, measurement: str | None = None) -> Parts:
    """The glob of a table's slot files, the ones commits merge."""
    return (*table_dir(name, measurement), PARTITION_GLOB, SLOT_FILE_GLOB)


def partitions_glob(name: str, measurement: str | None = None) -> Parts:
    """The glob of a table's ``date=`` partition directories."""
    return (*table_dir(name, measurement), PARTITION_GLOB)


def snapshot_file(name: str, key: str, day: date) -> Parts:
    """``<name>/date=YYYY-MM-DD/snap-<key>.parquet``; LakeError for an unsafe key."""
    return (check_table(name), date_dir(day), safe_part(f"snap-{key}.parquet", what="key"))


def snapshot_key(acc_id: str, *, run_id: str, at: datetime) -> str:
    """The file key of one DCM snapshot: sorts by time, names the acc_id, same key on a rerun.

    ``acc_id`` must already be checked (``parse.dcm.check_acc_id``); the key is checked again
    as a path component by :func:`snapshot_file`.
    """
    safe_run = re.sub(r"[^A-Za-z0-9_\-]", "", run_id)[:32]
    return f"{as_utc(at):%Y%m%dT%H%M%S%fZ}-acc{acc_id}-{safe_run}"


# -- state, staging, locks -----------------------------------------------------------------
def stamp(dt: datetime) -> str:
    """A file-name-safe UTC instant: 20240601T060000Z (µs only when present)."""
    dt = as_utc(dt)
    return dt.strftime("%Y%m%dT%H%M%S.%fZ" if dt.microsecond else "%Y%m%dT%H%M%SZ")


def watermark_file(measurement: str) -> Parts:
    """``_state/watermarks/<m>.json``."""
    return (STATE, "watermarks", f"{check_table(measurement)}.json")


def watermarks_glob() -> Parts:
    """Every measurement's watermark file."""
    return (STATE, "watermarks", "*.json")


def window_record_file(measurement: str, window: Window) -> Parts:
    """``_state/windows/<m>/<start>--<end>.json``, the record of one committed window."""
    name = f"{stamp(window.start)}--{stamp(window.end)}.json"
    return (STATE, "windows", check_table(measurement), name)


def state_records_glob(kind: str, measurement: str = "*") -> Parts:
    """``_state/<kind>/<m>/*.json``: the flat JSON records of one kind (``"windows"``)."""
    return (STATE, kind, measurement if measurement == "*" else check_table(measurement), "*.json")


def state_dirs(measurement: str) -> tuple[Parts, ...]:
    """The directories a measurement's state files are written in (temp files land there too)."""
    return ((STATE, "watermarks"), (STATE, "windows", check_table(measurement)))


def staging_dir(measurement: str, run_id: str, unique: str) -> Parts:
    """``_staging/<m>/<run>-<unique>``: one commit's (or compaction's) private files."""
    return (STAGING, check_table(measurement), f"{safe_token(run_id)}-{unique}")


def staging_name(rel: str) -> str:
    """The flat name under which the file at ``rel`` (relative to the lake) is staged."""
    return rel.replace("/", "__")


def lock_file(measurement: str) -> Parts:
    """``_locks/<m>.lock``: the lock (or lease) of one measurement."""
    return (LOCKS, f"{check_table(measurement)}.lock")


# -- derived tables (marts/) -----------------------------------------------------------------
def pending_file(measurement: str, token: str) -> Parts:
    """``_state/pending/<m>/<token>.json``: one commit whose slots the marts do not reflect yet."""
    return (STATE, "pending", check_table(measurement), safe_part(f"{token}.json", what="token"))


def pending_glob() -> Parts:
    """Every pending commit of every measurement."""
    return (STATE, "pending", "*", "*.json")


def marts_manifest_file() -> Parts:
    """``_state/marts.json``: which derived files make up each derived table now."""
    return (STATE, "marts.json")


def kept_file(slot_us: int) -> Parts:
    """``_derived/kept/date=.../part-HH.parquet``: what sessionizing needs of one ct slot."""
    return (DERIVED, KEPT, *slot_parts(slot_us))


def day_period(us: int) -> str:
    """The UTC day of ``us`` as a derived partition name (``2021-09-06``)."""
    return f"{from_us(us):%Y-%m-%d}"


def month_period(us: int) -> str:
    """The UTC month of ``us`` as a derived partition name (``2021-09``)."""
    return f"{from_us(us):%Y-%m}"


def derived_file(table: str, period: str, generation: str) -> Parts:
    """``_derived/<table>/<period>/<generation>.parquet``, written once, never replaced."""
    return (
        DERIVED,
        safe_part(table, what="derived table"),
        safe_part(period, what="period"),
        safe_part(f"{generation}.parquet", what="generation"),
    )


def derived_files_glob(table: str) -> Parts:
    """Every file of one derived table, current or superseded."""
    return (DERIVED, safe_part(table, what="derived table"), "*", "*.parquet")


def _measurement(m: str) -> str:
    if check_table(m) == REJECTS:
        raise LakeError("rejects are kept per measurement: name one, not 'rejects'")
    return m
