"""The CLI's allocator settings: made by the application only, and the user's choice wins."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from powerflex_etl.simulator import RunningSimulator

PROBE = (
    "from powerflex_etl.cli.memory import settle; done = settle(); "
    "import pyarrow as pa; print(pa.default_memory_pool().backend_name, ' '.join(done))"
)


def _probe(**env: str) -> tuple[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("ARROW_DEFAULT_MEMORY_POOL",)}
    base = {k: v for k, v in base.items() if not k.startswith(("MALLOC_", "POWERFLEX_ALLOC"))}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    pool, _, done = out.stdout.strip().partition(" ")
    return pool, done


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_cli_puts_arrow_on_the_system_allocator_with_one_glibc_arena() -> None:
    pool, done = _probe()
    assert pool == "system"
    assert done.split() == [
        "ARROW_DEFAULT_MEMORY_POOL=system",
        "M_ARENA_MAX=1",
        "M_MMAP_THRESHOLD=1048576",
    ]


def test_a_pool_the_user_chose_wins() -> None:
    pool, done = _probe(ARROW_DEFAULT_MEMORY_POOL="jemalloc")
    assert pool == "jemalloc"
    assert "ARROW_DEFAULT_MEMORY_POOL" not in done


def test_malloc_variables_of_the_user_are_left_alone() -> None:
    _, done = _probe(MALLOC_ARENA_MAX="4", MALLOC_MMAP_THRESHOLD_="65536")
    assert "M_ARENA_MAX" not in done and "M_MMAP_THRESHOLD" not in done


def test_powerflex_allocator_default_touches_nothing() -> None:
    pool, done = _probe(POWERFLEX_ALLOCATOR="default")
    assert done == ""
    assert pool != "system"  # the wheel's own allocator (mimalloc or jemalloc)


def test_the_library_never_makes_process_wide_allocator_settings() -> None:
    """Importing and using the library (not the CLI) leaves Arrow's pool as it comes."""
    code = (
        "import powerflex_etl, powerflex_etl.ingest.run, powerflex_etl.parse.answer; "
        "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() != "system"


def test_pandas_kept_out_lets_arrow_work_and_gives_pandas_back_after() -> None:
    code = (
        "import sys, pyarrow as pa\n"
        "from powerflex_etl.cli.memory import pandas_kept_out\n"
        "with pandas_kept_out():\n"
        "    pa.array([1.0, None]).to_numpy(zero_copy_only=False)\n"
        "    assert 'pandas' not in sys.modules\n"
        "print(type(pa.table({'a': [1]}).to_pandas()).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "DataFrame"


def test_an_ingest_never_imports_pandas(sim: RunningSimulator, tmp_path: Path) -> None:
    """pyarrow would import it (230 ms, 32 MB) only to ask whether arrays are pandas objects."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERFLEX_", "PREFECT_API"))}
    env.update(
        POWERFLEX_BASE_URL=sim.url,
        POWERFLEX_USERNAME=sim.config.username,
        POWERFLEX_PASSWORD=sim.config.password,
        POWERFLEX_LAKE=str(tmp_path / "lake"),
    )
    args = ["ingest", "--engine", "local", "-m", "ct_response"]
    args += ["--start", "2021-06-01T00:00", "--end", "2021-06-01T06:00"]
    code = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('loaded:', *sorted(sys.modules), file=sys.stderr))\n"
        f"sys.argv = ['powerflex-etl', *{args!r}]\n"
        "from powerflex_etl.cli.app import main\n"
        "main()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    loaded = out.stderr.rpartition("loaded:")[2].split()
    assert "pyarrow" in loaded and "pandas" not in loaded
