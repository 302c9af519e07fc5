"""The Prefect engine: what ``--engine prefect`` and ``backfill --executor dask`` run.

The CLI finds it through the ``powerflex_etl.engines`` entry point (pyproject.toml), so the
library never imports this package. It calls the flows in this process; the flows' tasks
run on a thread pool or, for a Dask backfill, in the cluster's worker processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from powerflex_etl.errors import ConfigError
from powerflex_etl.settings import Settings


class PrefectEngine:
    """``executor``: ``threads`` (a thread pool in this process) or ``dask`` (backfill only)."""

    def __init__(self, *, executor: str = "threads", dask_address: str | None = None) -> None:
        if executor not in ("threads", "dask"):
            raise ConfigError(f"unknown executor {executor!r}", hint="use threads or dask")
        self.executor = executor
        self.dask_address = dask_address

    def ingest(
        self,
        settings: Settings,
        *,
        start: str | None,
        end: str | None,
        measurements: list[str] | None,
        workers: int,
    ) -> dict[str, Any]:
        """The ingest flow, ``workers`` windows in flight; raises the first failure."""
        from flows.ingest import with_workers

        report: dict[str, Any] = with_workers(workers)(
            start=start,
            end=end,
            measurements=measurements,
            workers=workers,
            # the non-secret settings the flow must see as the CLI did (secrets: environment)
            lake=settings.lake,
            base_url=settings.base_url,
            window_hours=settings.window_hours,
            lookback_hours=settings.lookback_hours,
        )
        return report

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
        """The backfill flow on this engine's executor; raises the first failure."""
        from flows.backfill import backfill_with

        flow = backfill_with(self.executor, workers, self.dask_address)
        with shared_api() if self.executor == "dask" else nullcontext():
            report: dict[str, Any] = flow(
                start=start,
                end=end,
                measurements=measurements,
                window_hours=settings.window_hours,
                lake=settings.lake,
                redo=redo,
                # the workers read credentials from their environment; --base-url must reach them
                base_url=settings.base_url,
                workers=workers,
            )
        return report


#: How long the temporary Prefect API may take to start (seconds of polling).
STARTUP_TIMEOUT_S = 120


@contextmanager
def shared_api() -> Iterator[str | None]:
    """Make sure other processes (Dask workers) reach the same Prefect API as this one.

    Without ``PREFECT_API_URL``, Prefect serves a temporary API for this process only; each
    Dask worker would then start its own and time out doing so. Here the temporary server
    is started once and its URL put in the settings the task runner hands to the workers.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield PREFECT_API_URL.value()
        return
    from prefect.server.api.server import SubprocessASGIServer

    # the same instance Prefect's own temporary-API mode uses; it stops itself at exit
    server = SubprocessASGIServer()
    # Prefect's default (20 polls of 0.1 s plus their requests) is too short for a busy
    # 2-core machine starting Dask workers beside it: a slow start is not a failure
    server.start(timeout=STARTUP_TIMEOUT_S)
    with temporary_settings({PREFECT_API_URL: server.api_url}):
        yield server.api_url
