"""The temporary Prefect server's own settings reach its process, and only its process."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from flows import console

KEY = "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE"


def _child_sees() -> str:
    """What a process started now (as Prefect starts its server) reads for KEY."""
    out = subprocess.run(
        [sys.executable, "-c", f"import os; print(os.environ.get({KEY!r}, '-'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def test_the_server_started_inside_gets_batched_task_run_records(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEY, raising=False)
    with console._server_settings():
        assert _child_sees() == console.SERVER_SETTINGS[KEY] != "1"
    # this process's own environment is as it was: later children are not configured
    assert KEY not in os.environ
    assert _child_sees() == "-"


def test_a_setting_the_user_made_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY, "1")
    with console._server_settings():
        assert _child_sees() == "1"
    assert os.environ[KEY] == "1"
