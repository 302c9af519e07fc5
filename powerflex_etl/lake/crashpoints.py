"""Named crash points of the commit path, for the crash-consistency tests (test-only).

The lake, state, lock and catalog code call :func:`reached` at every step after which a
crash must still leave the lake consistent. With no hook set (always, in production) a call
is one global lookup and a comparison with None.

Two ways in, both for tests only:

- in-process: set :data:`HOOK` to a callable taking the point's name;
- in a subprocess (the CLI): ``POWERFLEX_CRASH_AT=<pattern>[#<n>]`` in its environment
  makes it SIGKILL itself at the ``n``-th point (default 1st) whose name matches the
  ``fnmatch`` pattern, e.g. ``after_replace:*#2``. Read once, when this module is imported.
  Never set it outside a test: the process dies on purpose.

Point names are ``<family>`` or ``<family>:<detail>`` (a measurement or a path relative to
the lake); :data:`FAMILIES` lists every family in the order a commit reaches them.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping

ENV_VAR = "POWERFLEX_CRASH_AT"

#: Every family of crash point, in the order one window's commit and the run around it
#: reach them. ``<m>`` is a measurement, ``<slot>``/``<file>``/``<rel>`` a path in the lake.
FAMILIES: tuple[str, ...] = (
    "lock_acquired",  # :<m>  lock (flock or lease) taken, owner written
    "staged",  # :<slot>  one slot's new file staged (local file or bytes in memory)
    "rejects_staged",  # every rejects file staged; nothing replaced yet
    "pending_written",  # :<m>  the commit's pending record written (marts/ will redo its slots)
    "before_replace",  # :<slot>  about to replace (or remove) one slot file
    "after_replace",  # :<slot>  that slot file replaced
    "kept_replaced",  # :<file>  one slot's kept rows (for the marts) replaced
    "before_reject_replace",  # :<file>  about to replace one rejects file
    "after_reject_replace",  # :<file>  that rejects file replaced
    "rejects_replaced",  # every file of the commit in place
    "staging_removed",  # the commit's staging directory removed, lock still held
    "lock_releasing",  # :<m>  about to release the lock
    "lock_released",  # :<m>  lock released
    "before_state",  # the window's record about to be written (data already in place)
    "temp_written",  # :<rel>  a state file's temp copy written, not yet renamed (local)
    "after_state",  # the window's record written
    "before_watermark",  # :<m>  about to move the watermark forward (lock held)
    "after_watermark",  # :<m>  watermark written
    "marts_started",  # the marts refresh holds every lock, has read the pending commits
    "derived_written",  # :<rel>  one new derived file written (not yet in the manifest)
    "before_manifest",  # every new derived file written, the manifest about to be swapped
    "after_manifest",  # the derived tables switched to the new files
    "pending_cleared",  # the pending records the refresh reflected removed
    "catalog_started",  # catalog rebuild begun, nothing written yet
    "catalog_building",  # the temporary catalog holds the views, not checkpointed
    "catalog_temp_written",  # the temporary catalog closed, not yet renamed
    "catalog_renamed",  # the new catalog in place
)

#: Points of ``powerflex-etl compact`` (not part of a window's commit).
COMPACT_FAMILIES: tuple[str, ...] = (
    "compact_replaced",  # :<rel>  one rewritten slot file put in place
    "compact_removed",  # :<rel>  one folded foreign file deleted
)

#: The hook called at each point; None (no cost) unless a test or the env var sets it.
HOOK: Callable[[str], None] | None = None


def reached(name: str) -> None:
    """Tell the crash hook, if any, that the commit path reached point ``name``."""
    hook = HOOK
    if hook is not None:
        hook(name)


def kill_at(spec: str) -> Callable[[str], None]:
    """A hook that SIGKILLs this process at the ``n``-th point matching ``pattern[#n]``."""
    pattern, _, nth = spec.partition("#")
    n = int(nth) if nth else 1
    seen = 0
    guard = threading.Lock()

    def hook(name: str) -> None:
        nonlocal seen
        if not fnmatch.fnmatchcase(name, pattern):
            return
        with guard:
            seen += 1
            hit = seen == n
        if hit:
            sys.stderr.write(f"crash point {name}: SIGKILL (POWERFLEX_CRASH_AT={spec})\n")
            sys.stderr.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    return hook


def install_from_env(environ: Mapping[str, str] = os.environ) -> None:
    """Set :data:`HOOK` from ``POWERFLEX_CRASH_AT`` when it is set (test-only)."""
    global HOOK
    spec = environ.get(ENV_VAR)
    if spec:
        HOOK = kill_at(spec)


install_from_env()
