"""The CLI's allocator settings: made by the application only, and the user's choice wins."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

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
