"""Where windows run: the submit abstraction the orchestrator drives, and how engines are found.

The orchestrator (``ingest/run.py``) needs three things of an engine: start one window
(``submit``), tell which of several started windows finished first (``first_done``), and
each handle's ``result()``; a ``cancel(err)``, if the engine has one, stops the windows in
flight when a failure ends the run. :class:`ThreadPoolSubmit` is the built-in one;
``flows/`` passes Prefect's ``task.submit`` the same way. A whole engine (what ``--engine``
names) runs an ingest or a backfill; engines other than the built-in ``local`` one are found
through the ``powerflex_etl.engines`` entry point group, so the library never imports them.

Which engine runs when none is named (:func:`default_engine`): ``local``, unless a Prefect
API is configured (``PREFECT_API_URL``), where runs are recorded as flow runs. The
local engine runs the very same library steps without paying for Prefect's start-up (a
temporary API server per invocation, seconds to tens of seconds) on every command.
"""

from __future__ import annotations

import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from powerflex_etl.errors import ConfigError, PowerflexError
from powerflex_etl.ingest import window as _window
from powerflex_etl.ingest.summary import WindowSummary
from powerflex_etl.windows import Window

if TYPE_CHECKING:
    from powerflex_etl.api.client import PowerflexClient
    from powerflex_etl.lake.state import State
    from powerflex_etl.lake.store import Lake
    from powerflex_etl.settings import Settings

#: The entry point group an engine registers under (``name = "module:factory"``).
ENGINE_GROUP = "powerflex_etl.engines"


class Handle(Protocol):
    """One submitted window; ``result()`` waits for it and raises what it raised."""

    def result(self) -> WindowSummary: ...


class Submit(Protocol):
    """Runs windows somewhere: a thread pool, Prefect tasks, a Dask cluster."""

    def submit(self, measurement: str, window: Window) -> Handle:
        """Start ingesting one window; return at once."""
        ...

    def first_done(self, handles: Sequence[Handle]) -> Handle:
        """Block until one of ``handles`` has finished (ok or not) and return it."""
        ...


class Engine(Protocol):
    """What ``--engine`` / ``--executor`` name: runs an ingest or a backfill, returns its report."""

    def ingest(
        self,
        settings: Settings,
        *,
        start: str | None,
        end: str | None,
        measurements: list[str] | None,
        workers: int,
    ) -> dict[str, Any]:
        """One run over [start, end) (incremental without start); raises the first failure."""
        ...

    def backfill(
        self,
        settings: Settings,
        *,
        start: str,
        end: str,
        measurements: list[str] | None,
        workers: int,
        redo: bool,
    ) -> dict[str, Any]:
        """A long range, skipping committed windows unless ``redo``; raises the first failure."""
        ...


class ThreadPoolSubmit:
    """The built-in engine's submit: :func:`ingest_window` on a thread pool in this process.

    A context manager: leaving it waits for every started window.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        lake: Lake,
        state: State,
        client: PowerflexClient,
        run_id: str,
        workers: int,
    ) -> None:
        self._client = client
        self._args = (client, lake, state)
        self._settings = settings
        self._run_id = run_id
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="window")

    def __enter__(self) -> ThreadPoolSubmit:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)

    def submit(self, measurement: str, window: Window) -> Future[WindowSummary]:
        """Start one window on the pool."""
        # looked up at call time, so a test can wrap the one function every engine runs
        return self._pool.submit(
            _window.ingest_window,
            *self._args,
            measurement,
            window,
            settings=self._settings,
            run_id=self._run_id,
        )

    def cancel(self, reason: PowerflexError) -> None:
        """The run is stopping: windows in flight fail at their next API call."""
        self._client.abort(reason)

    def first_done(self, handles: Sequence[Handle]) -> Handle:
        """The first of ``handles`` to finish."""
        # every handle here came from submit(), so it is one of this pool's futures
        futures = cast("list[Future[WindowSummary]]", list(handles))
        done, _ = wait(futures, return_when=FIRST_COMPLETED)
        return next(h for h in handles if h in done)


def default_engine(environ: Mapping[str, str] | None = None) -> str:
    """The engine a run uses when none is named: ``prefect`` when a Prefect API is
    configured (:func:`prefect_api_url`; runs are recorded there as flow runs), else ``local``."""
    return "prefect" if prefect_api_url(environ) else "local"


def prefect_api_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The Prefect API this process would use, found without importing Prefect.

    ``PREFECT_API_URL`` in the environment; else, when Prefect is already loaded here (a
    flow, a test harness), its current setting; else the active Prefect profile's
    (``prefect config set PREFECT_API_URL=...`` writes it to ``$PREFECT_HOME/profiles.toml``).
    """
    env = os.environ if environ is None else environ
    url = env.get("PREFECT_API_URL", "").strip()
    if url:
        return url
    loaded = sys.modules.get("prefect.settings")
    if loaded is not None and environ is None:
        value = loaded.PREFECT_API_URL.value()
        return str(value) if value else None
    return _profile_api_url(env)


def _profile_api_url(env: Mapping[str, str]) -> str | None:
    home = Path(env.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(env.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        doc = tomllib.loads(path.read_text())
    except (OSError, ValueError):
        return None  # no profiles, or unreadable ones: Prefect would not find a URL either
    active = env.get("PREFECT_PROFILE") or doc.get("active")
    profile = doc.get("profiles", {}).get(active, {}) if isinstance(active, str) else {}
    url = profile.get("PREFECT_API_URL") if isinstance(profile, dict) else None
    return str(url).strip() if url and str(url).strip() else None


def plugin_engine(name: str, **options: Any) -> Engine:
    """The engine registered as ``name`` in the ``powerflex_etl.engines`` entry point group.

    Its factory is called with ``options``. A missing or unloadable engine is a ConfigError.
    """
    from importlib.metadata import entry_points

    found = list(entry_points(group=ENGINE_GROUP, name=name))
    if not found:
        raise ConfigError(
            f"engine {name!r} is not installed",
            hint="use --engine local, or reinstall the package (make dev) so its engines register",
        )
    try:
        factory = found[0].load()
    except ImportError as err:
        raise ConfigError(
            f"engine {name!r} cannot be loaded: {err}",
            hint="install its dependencies, or use --engine local",
        ) from err
    engine: Engine = factory(**options)
    return engine
