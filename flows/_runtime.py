"""Per-process objects the tasks share: settings, one thread-safe client, the lake; log routing.

Nothing here is ever sent to Prefect: flow and task parameters carry only non-secret
overrides; the password comes from the environment (or a Prefect Secret block resolved
inside the process), and each process (a Dask worker included) builds its own client.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict
from typing import Any

from powerflex_etl.api.client import PowerflexClient
from powerflex_etl.errors import PowerflexError
from powerflex_etl.ingest.upkeep import open_lake
from powerflex_etl.lake.state import State
from powerflex_etl.lake.store import Lake
from powerflex_etl.settings import Settings

_lock = threading.Lock()
# one client per run (its token, retry budget and abort are the run's), newest last
_clients: OrderedDict[str, PowerflexClient] = OrderedDict()
# clients of this many runs are kept in a long-lived process; older ones are closed
_KEEP_RUNS = 8
_SECRET_FIELDS = {"password"}


def settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from the environment with non-secret overrides (None values ignored)."""
    clean = {
        k: v for k, v in (overrides or {}).items() if v is not None and k not in _SECRET_FIELDS
    }
    secret = _secret_block_password()
    if secret is not None:
        clean["password"] = secret
    return Settings(**clean)


def _secret_block_password() -> str | None:
    """The password from a Prefect Secret block named by POWERFLEX_PASSWORD_BLOCK, if set."""
    name = os.environ.get("POWERFLEX_PASSWORD_BLOCK")
    if not name:
        return None
    from prefect.blocks.system import Secret

    block: Any = Secret.load(name)
    return str(block.get())


def client(s: Settings, run_id: str) -> PowerflexClient:
    """The client of run ``run_id`` for ``s``'s API and account, shared by its tasks here.

    Per run, not per process: a run's refused credentials, spent retry budget or abort
    must not follow the next run in a long-lived process.
    """
    key = json.dumps([run_id, s.base_url, s.username, s.verify_tls])
    with _lock:
        c = _clients.get(key)
        if c is None:
            c = _clients[key] = PowerflexClient(s)
            while len(_clients) > _KEEP_RUNS:
                _clients.popitem(last=False)[1].close()
        return c


def abort_run(run_id: str, reason: PowerflexError) -> None:
    """Make every client of ``run_id`` in this process refuse further calls."""
    prefix = json.dumps([run_id])[:-1] + ","
    with _lock:
        for key, c in _clients.items():
            if key.startswith(prefix):
                c.abort(reason)


def lake_and_state(s: Settings) -> tuple[Lake, State]:
    """The lake at ``s.lake`` and its state."""
    lake = open_lake(s)
    return lake, State(lake)


def _in_a_run(record: logging.LogRecord) -> bool:
    from prefect.context import get_run_context
    from prefect.exceptions import MissingContextError

    try:
        get_run_context()
    except MissingContextError:
        return False
    return True


def route_library_logs() -> None:
    """Make the library's own log lines (``powerflex_etl``) part of the run's logs in Prefect.

    The library logs each window once; Prefect's API handler on its logger is what shows
    that line in the flow run (no second copy through ``get_run_logger``). Idempotent, and
    checked on every call because the CLI may have replaced the logger's handlers since.
    Lines logged outside a flow or task run stay out of the API.
    """
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger("powerflex_etl")
    with _lock:
        if any(isinstance(h, APILogHandler) for h in logger.handlers):
            return
        handler = APILogHandler()
        handler.addFilter(_in_a_run)
        logger.addHandler(handler)
        # a worker's root logger is at WARNING: the per-window INFO lines must still get through
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
