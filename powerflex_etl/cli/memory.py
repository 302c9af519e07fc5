"""The command line's memory settings: made once, by the application, before any thread starts.

A window's memory is freed stage by stage (the answer after the parse, the parsed columns
after normalize, ...), but the allocators keep what was freed: glibc gives each worker
thread its own arena with its own high-water mark and raises its mmap threshold as large
blocks come and go, and Arrow's bundled mimalloc holds freed pages too. Measured at 2.5M
points with two workers (``benchmarks/ingest_vs_dlt.py``, ``docs/performance.md``): 480-530
MB peak as the allocators come, ~360 MB with

- one glibc arena (``M_ARENA_MAX`` 1) and blocks over 1 MiB mmapped (``M_MMAP_THRESHOLD``,
  which also keeps glibc from raising it), so a freed answer goes back to the kernel;
- Arrow on the system allocator (``ARROW_DEFAULT_MEMORY_POOL=system``), so its buffers
  follow the same rules;

for no measurable CPU (1.3-1.4 s system time against 2.0-2.7 s as shipped: fewer pages
are faulted in fresh). These are process-wide switches, so the library never makes them;
the CLI does, as the application. Whatever the user set wins: an ``ARROW_DEFAULT_MEMORY_POOL``
or ``MALLOC_*`` variable of their own leaves that part alone, and
``POWERFLEX_ALLOCATOR=default`` leaves everything as the allocators come.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import importlib.abc
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType

# glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_BYTES = 1 << 20
ARENAS = 1
#: ``POWERFLEX_ALLOCATOR``: ``lean`` (the default) or ``default`` (touch nothing)
ENV = "POWERFLEX_ALLOCATOR"


def settle() -> list[str]:
    """Make the settings above unless the user chose otherwise; returns what was set.

    Call before pyarrow is imported and before any thread starts (the arena limit counts
    for arenas not made yet). Safe to call twice; a no-op off glibc.
    """
    env = os.environ
    if _as_they_come():
        return []
    done: list[str] = []
    if "ARROW_DEFAULT_MEMORY_POOL" not in env:
        # read once, at pyarrow's import: the CLI imports it later than this
        env["ARROW_DEFAULT_MEMORY_POOL"] = "system"
        done.append("ARROW_DEFAULT_MEMORY_POOL=system")
        if "pyarrow" in sys.modules:  # imported already (a test, an embedding program)
            import pyarrow as pa

            pa.set_memory_pool(pa.system_memory_pool())
    libc = _glibc()
    if libc is not None:
        if "MALLOC_ARENA_MAX" not in env and libc.mallopt(M_ARENA_MAX, ARENAS) == 1:
            done.append(f"M_ARENA_MAX={ARENAS}")
        if "MALLOC_MMAP_THRESHOLD_" not in env and (
            libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) == 1
        ):
            done.append(f"M_MMAP_THRESHOLD={MMAP_THRESHOLD_BYTES}")
    return done


def _as_they_come() -> bool:
    """Whether the user asked for no settings at all (``POWERFLEX_ALLOCATOR=default``)."""
    return os.environ.get(ENV, "lean").strip().lower() == "default"


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (the only one whose mallopt takes these numbers)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  (absent from musl and others)
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


class _PandasKeptOut(importlib.abc.MetaPathFinder):
    """Refuses ``import pandas`` (and its submodules) while installed."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ImportError("pandas is kept out of this command (cli/memory.py)", name=fullname)
        return None


@contextmanager
def pandas_kept_out() -> Iterator[None]:
    """Inside, ``import pandas`` fails: for the commands that never use it (ingest, backfill).

    pyarrow imports pandas the first time it makes or converts an array, only to ask whether
    the input is a pandas object (``_pandas_api`` in pyarrow's pandas-shim.pxi): 230 ms and
    32 MB of a process's peak for a command that never sees one. Refused, pyarrow notes "no
    pandas" and carries on; whatever needs pandas for real afterwards (``to_pandas``) makes
    pyarrow try again, which then succeeds. A no-op when pandas is loaded already or with
    ``POWERFLEX_ALLOCATOR=default``. Install it before any thread starts and leave it after
    they end: it is the interpreter's import machinery, the application's to change.
    """
    if "pandas" in sys.modules or _as_they_come():
        yield
        return
    finder = _PandasKeptOut()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
