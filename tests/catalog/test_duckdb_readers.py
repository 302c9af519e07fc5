"""The catalog opens in the DuckDBs analysts have, not only in the one that wrote it.

Each reader is installed from the package index into a venv of its own, cached beside the
test venv and keyed by package and version (the first run pays ~15 s, reruns nothing):

- ``duckdb-cli`` 1.5.6, the CLI a user gets from ``pip install duckdb-cli`` (no Debian
  package exists); it runs as ``duckdb -readonly lake/powerflex.duckdb`` does in the README;
- Python ``duckdb`` at :data:`powerflex_etl.catalog.build.MIN_READER`, the oldest version
  docs/analytics.md promises.

Every view runs in each, from another working directory, and must give what the writer's
DuckDB gives (row counts, non-null counts, exact minima and maxima). A test skips only when
the package index cannot be reached; a view that errors fails it.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from powerflex_etl.catalog import connect, default_catalog_path
from powerflex_etl.catalog.build import MIN_READER, STORAGE_VERSION
from powerflex_etl.catalog.sqlfiles import sql_ident
from powerflex_etl.lake.url import LakeUrl
from powerflex_etl.settings import Settings

CLI_VERSION = "1.5.6"

# what pip says when it cannot reach the index (only then may the test skip); an index that
# answers without the version lists the versions it has, and fails the test
_OFFLINE = re.compile(
    r"from versions: none|NewConnectionError|Failed to establish a new connection|"
    r"Name or service not known|Temporary failure in name resolution|Network is unreachable|"
    r"ConnectTimeout|Read timed out|ProxyError|Max retries exceeded"
)


def _cache_root() -> Path:
    """Beside the test venv (``make clean`` removes it), else the system's temporary dir."""
    for base in (Path(sys.prefix), Path(tempfile.gettempdir())):
        root = base / "duckdb-readers"
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(root, os.W_OK):
            return root
    pytest.fail("no writable directory to cache the DuckDB readers in")


def installed(package: str, version: str) -> Path:
    """A venv with ``package==version``, built once (under a lock: a venv cannot be moved
    into place, its scripts name their own path) and marked complete last."""
    venv = _cache_root() / f"{package}-{version}"
    with open(venv.with_name(venv.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / ".complete").is_file():
            return venv
        shutil.rmtree(venv, ignore_errors=True)  # a build that was killed half-way
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        pip = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--timeout",
                "30",
                "--retries",
                "2",
                f"{package}=={version}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if pip.returncode != 0:
            lines = [ln for ln in pip.stderr.splitlines() if ln.strip() and "is ignored" not in ln]
            detail = lines[-1] if lines else f"pip exit {pip.returncode}"
            if _OFFLINE.search(pip.stderr):
                pytest.skip(
                    f"cannot install {package}=={version} (package index unreachable): {detail}"
                )
            pytest.fail(f"pip install {package}=={version} failed: {detail}")
        (venv / ".complete").touch()
    return venv


Results = dict[str, tuple[list[list[dict[str, object]]] | None, str]]

# the Python reader: every view's statements in one process (a start-up costs ~0.5 s), each
# view's error kept apart
_PY_READER = """
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
out = {}
for view, statements in json.load(sys.stdin).items():
    try:
        results = []
        for sql in statements:
            cur = con.execute(sql)
            names = [d[0] for d in cur.description]
            results.append([dict(zip(names, r)) for r in cur.fetchall()])
        out[view] = [results, ""]
    except Exception as e:
        out[view] = [None, (str(e).splitlines() or [type(e).__name__])[0]]
print(json.dumps(out, default=str))
"""


def _json_documents(text: str) -> list[list[dict[str, object]]]:
    """The CLI's -json output: one JSON array per statement, one after the other."""
    docs, pos, decoder = [], 0, json.JSONDecoder()
    text = text.strip()
    while pos < len(text):
        doc, end = decoder.raw_decode(text, pos)
        docs.append(doc)
        pos = end
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return docs


@dataclass(frozen=True)
class Reader:
    """One DuckDB that is not the writer's, reading the catalog read-only from ``cwd``."""

    name: str
    venv: Path

    def run(self, catalog: Path, statements: dict[str, list[str]], cwd: Path) -> Results:
        """Per view: (each statement's rows as JSON objects, "") or (None, the error's line)."""
        env = {**os.environ, "HOME": str(cwd), "TZ": "UTC"}
        if self.name != "duckdb-cli":
            out = subprocess.run(
                [str(self.venv / "bin" / "python"), "-c", _PY_READER, str(catalog)],
                input=json.dumps(statements),
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert out.returncode == 0, out.stderr[-2000:]
            return {k: (v[0], v[1]) for k, v in json.loads(out.stdout).items()}
        # every view in one run (a start-up costs ~0.4 s on a busy machine); when anything
        # fails, view by view, so each error is named with its view
        every = [sql for sqls in statements.values() for sql in sqls]
        docs, _ = self._cli(catalog, every, cwd, env)
        if docs is not None and len(docs) == len(every):
            it = iter(docs)
            return {view: ([next(it) for _ in sqls], "") for view, sqls in statements.items()}
        return {view: self._cli(catalog, sqls, cwd, env) for view, sqls in statements.items()}

    def _cli(
        self, catalog: Path, sqls: list[str], cwd: Path, env: dict[str, str]
    ) -> tuple[list[list[dict[str, object]]] | None, str]:
        # as the README has users run it; the CLI stops at a statement that fails
        cmd = [str(self.venv / "bin" / "duckdb"), "-readonly", "-json", str(catalog)]
        cmd += ["-c", "; ".join(sqls)]
        out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
        errors = [ln for ln in out.stderr.splitlines() if "Error" in ln]
        if out.returncode != 0 or errors:
            lines = errors or out.stderr.splitlines() or [f"exit {out.returncode}"]
            return None, lines[0]
        return _json_documents(out.stdout), ""


@pytest.fixture(scope="module", params=[("duckdb-cli", CLI_VERSION), ("duckdb", MIN_READER)])
def reader(request: pytest.FixtureRequest) -> Iterator[Reader]:
    package, version = request.param
    venv = installed(package, version)
    yield Reader(package, venv)


def _fingerprint_sql(con: duckdb.DuckDBPyConnection, view: str) -> str:
    """One row that pins a view's content exactly: counts, and min/max of exact-valued columns.

    Floats are left to their non-null counts (a parallel sum's last bits differ from run to
    run); times become epoch microseconds so neither side's TimeZone can change them.
    """
    parts = ["count(*) as n"]
    for i, (name, typ, *_rest) in enumerate(con.execute(f"describe {sql_ident(view)}").fetchall()):
        col = sql_ident(name)
        parts.append(f"count({col}) as c{i}")
        if typ.startswith("TIMESTAMP"):
            parts += [f"epoch_us(min({col})) as lo{i}", f"epoch_us(max({col})) as hi{i}"]
        elif typ in {"DATE", "BIGINT", "INTEGER", "SMALLINT", "TINYINT", "VARCHAR", "BOOLEAN"}:
            parts += [f"min({col})::varchar as lo{i}", f"max({col})::varchar as hi{i}"]
    return f"select {', '.join(parts)} from {sql_ident(view)}"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _describe_sql(view: str) -> str:
    return (
        "select column_name, data_type from information_schema.columns "
        f"where table_name = '{view}' order by ordinal_position"
    )


def test_every_view_runs_in_other_duckdbs_from_another_directory(
    full_lake: Settings, reader: Reader, tmp_path: Path
) -> None:
    catalog = default_catalog_path(LakeUrl.parse(full_lake.lake))
    con = connect(full_lake.lake)
    try:
        views = [
            r[0]
            for r in con.execute(
                "select view_name from duckdb_views() where database_name = 'powerflex' "
                "order by view_name"
            ).fetchall()
        ]
        expected: dict[str, tuple[str, dict[str, str | None], list[tuple[str, str]]]] = {}
        for view in views:
            sql = _fingerprint_sql(con, view)
            cur = con.execute(sql)
            names = [d[0] for d in cur.description or []]
            row = cur.fetchone()
            assert row is not None
            want = {k: _text(v) for k, v in zip(names, row, strict=True)}
            columns = [(str(a), str(b)) for a, b in con.execute(_describe_sql(view)).fetchall()]
            expected[view] = (sql, want, columns)
    finally:
        con.close()
    assert len(views) >= 20
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    got = reader.run(catalog, {v: [expected[v][0], _describe_sql(v)] for v in views}, elsewhere)
    errors, differ = [], []
    for view in views:
        _, want, columns = expected[view]
        results, err = got[view]
        if results is None:
            errors.append(f"{view}: {err}")
            continue
        fingerprint, described = results
        row = {k: _text(v) for k, v in fingerprint[0].items()}
        if row != want:
            differ.append(f"{view}: {row} != {want}")
        got_cols = [(str(r["column_name"]), str(r["data_type"])) for r in described]
        if got_cols != columns:
            differ.append(f"{view} columns: {got_cols} != {columns}")
    assert errors == [], f"{reader.name} cannot run: " + "; ".join(errors)
    assert differ == [], f"{reader.name} reads differently: " + "; ".join(differ)


def test_the_file_says_the_storage_version_it_was_written_in(full_lake: Settings) -> None:
    catalog = default_catalog_path(LakeUrl.parse(full_lake.lake))
    con = duckdb.connect()
    try:
        con.execute(f"attach '{catalog}' as c (read_only)")
        tags = con.execute(
            "select tags['storage_version'] from duckdb_databases() where database_name = 'c'"
        ).fetchone()
        meta = dict(con.execute("select key, value from c._catalog").fetchall())
    finally:
        con.close()
    # DuckDB names the oldest release that reads the file; 2.0's own format says v2.0.0+
    assert tags is not None and tags[0] == "v1.0.0+"
    assert meta["storage_version"] == STORAGE_VERSION
    assert meta["min_reader"] == MIN_READER
