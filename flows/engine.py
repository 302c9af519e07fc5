"""The Prefect engine: what ``--engine prefect`` and ``backfill --executor dask`` run.

The CLI finds it through the ``powerflex_etl.engines`` entry point (pyproject.toml), so the
library never imports this package. It calls the flows in this process; the flows' tasks
run on a thread pool or, for a Dask backfill, in the cluster's worker processes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from powerflex_etl.errors import ConfigError
from powerflex_etl.settings import Settings

log = logging.getLogger("powerflex_etl.flows")


class PrefectEngine:
    """``executor``: ``threads`` (a thread pool in this process) or ``dask`` (backfill only).

    ``log_file``: where Prefect's own console output goes (its log lines; its temporary
    server's output beside it, ``prefect-server.log``) instead of the terminal; None leaves
    it where Prefect puts it. The CLI passes one unless ``--verbose``.
    """

    def __init__(
        self,
        *,
        executor: str = "threads",
        dask_address: str | None = None,
        log_file: str | Path | None = None,
    ) -> None:
        if executor not in ("threads", "dask"):
            raise ConfigError(f"unknown executor {executor!r}", hint="use threads or dask")
        self.executor = executor
        self.dask_address = dask_address
        self.log_file = Path(log_file) if log_file is not None else None

    @contextmanager
    def _session(self) -> Iterator[str]:
        """Prefect's console quiet (with a log file), and a Prefect API for the run."""
        from flows.console import prefect_api, prefect_console_to

        with ExitStack() as stack:
            server_log = None
            if self.log_file is not None:
                log.info("Prefect's own log: %s", self.log_file)
                stack.enter_context(prefect_console_to(self.log_file))
                server_log = self.log_file.with_name("prefect-server.log")
            yield stack.enter_context(prefect_api(server_log))

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

        with self._session():
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
        # the API is set before the task runner starts, so Dask workers reach the same one
        with self._session():
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
