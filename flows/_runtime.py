"""Per-process objects the tasks share: settings, one thread-safe client, the lake.

Nothing here is ever sent to Prefect: flow and task parameters carry only non-secret
overrides; the password comes from the environment (or a Prefect Secret block resolved
inside the process), and each process (a Dask worker included) builds its own client.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from powerflex_etl.api.client import PowerflexClient
from powerflex_etl.lake.state import State
from powerflex_etl.lake.store import Lake
from powerflex_etl.settings import Settings

_lock = threading.Lock()
_clients: dict[str, PowerflexClient] = {}
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
    import os

    name = os.environ.get("POWERFLEX_PASSWORD_BLOCK")
    if not name:
        return None
    from prefect.blocks.system import Secret

    block: Any = Secret.load(name)
    return str(block.get())


def client(s: Settings) -> PowerflexClient:
    """One shared client per (base_url, username) in this process."""
    key = json.dumps([s.base_url, s.username, s.verify_tls])
    with _lock:
        c = _clients.get(key)
        if c is None:
            c = _clients[key] = PowerflexClient(s)
        return c


def lake_and_state(s: Settings) -> tuple[Lake, State]:
    lake = Lake(s.lake)
    return lake, State(lake)
