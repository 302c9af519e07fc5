"""`powerflex-etl api ...` through ``cli.main()``, as a user runs it, against the simulator."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from powerflex_etl.cli.app import app, main
from powerflex_etl.settings import Settings
from tests.api.test_client_faults import Fake, _self_signed, _serve

ACC = "0039"


@pytest.fixture
def env(sim_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("POWERFLEX_BASE_URL", sim_settings.base_url)
    monkeypatch.setenv("POWERFLEX_USERNAME", sim_settings.username)
    monkeypatch.setenv("POWERFLEX_PASSWORD", sim_settings.password.get_secret_value())
    monkeypatch.setenv("POWERFLEX_RETRY_BACKOFF_S", "0")
    return sim_settings


def run(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> tuple[int, bytes, str]:
    """Run ``powerflex-etl api ...`` in-process through main(): (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["powerflex-etl", "api", *args])
    with pytest.raises(SystemExit) as info:
        main()
    out, err = capsysbinary.readouterr()
    code = info.value.code
    return (code if isinstance(code, int) else 1), out, err.decode()


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]) -> Any:
    return lambda *args: run(list(args), monkeypatch, capsysbinary)


def test_login_check(env: Settings, api: Any) -> None:
    code, out, err = api("login-check")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["logged_in"] is True and doc["username"] == env.username
    assert doc["token_expires"].startswith("20")
    assert env.password.get_secret_value() not in out.decode() + err
    assert "eyJ" not in out.decode()


def test_measurement_get_prints_the_raw_answer(env: Settings, api: Any) -> None:
    code, out, err = api(
        "measurement",
        "get",
        "--measurement",
        "evse_response",
        "--start",
        "2024-06-03",
        "--end",
        "2024-06-03T06:00",
    )
    assert code == 0, err
    series = json.loads(out)["results"][0]["series"]
    assert series and series[0]["name"] == "evse_response"


def test_dcm_commands(env: Settings, api: Any, tmp_path: Path) -> None:
    code, out, err = api(
        "external-signal",
        "set",
        "--acc-id",
        ACC,
        "--name",
        "DCM_EVSE_Allocation",
        "--max-load",
        "21.6",
        "--unit",
        "kW",
        "--disabled",
    )
    assert code == 0, err
    signal = json.loads(out)
    assert signal["is_enabled"] is False and signal["max_load"] == 21.6

    code, out, err = api("external-signal", "get", "--acc-id", ACC, "--name", "DCM_EVSE_Allocation")
    assert code == 0, err
    assert json.loads(out) == signal
    code, out, _ = api("external-signal", "get", "--acc-id", ACC)
    assert json.loads(out)["DCM_EVSE_Allocation"] == signal

    code, out, err = api("real-time-load", "set", "--acc-id", ACC, "--kw", "1100")
    assert code == 0, err

    code, out, err = api(
        "target-peak", "set", "--acc-id", ACC, "--month", "Jun=700", "--month", "Jul=555"
    )
    assert code == 0, err
    months = json.loads(out)
    assert len(months) == 12 and months["Jun"] == 700 and months["Jul"] == 555
    code, out, _ = api("target-peak", "get", "--acc-id", ACC)
    assert json.loads(out) == months

    schedule = tmp_path / "schedule.json"
    schedule.write_text(
        json.dumps(
            {
                "definition": [
                    {"days": [1, 2, 3], "schedule": [{"start_time": "07:30:00", "max_power": 13}]}
                ],
                "max_power_units": "kW",
                "is_enabled": True,
                "timezone": "US/Pacific",
            }
        )
    )
    code, out, err = api("max-power-schedule", "set", "--acc-id", ACC, "--file", str(schedule))
    assert code == 0, err
    assert isinstance(json.loads(out), dict)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["target-peak", "set", "--acc-id", ACC, "--month", "June=700"], "'June' is not a month"),
        (["target-peak", "set", "--acc-id", ACC, "--month", "Jun=7.5"], "is not MONTH=KW"),
        (["target-peak", "get", "--acc-id", "x3"], "acc_id 'x3'"),
        (
            [
                "external-signal",
                "set",
                "--acc-id",
                ACC,
                "--name",
                "S",
                "--max-load",
                "1",
                "--unit",
                "W",
                "--enabled",
            ],
            "is not kW or A",
        ),
        (
            ["measurement", "get", "--measurement", "ct", "--start", "2024-06-01", "--end", "x"],
            "'ct' is not one of",
        ),
        (
            [
                "measurement",
                "get",
                "--measurement",
                "ct_response",
                "--start",
                "2024-06-01",
                "--end",
                "June",
            ],
            "--end: 'June' is not an ISO date",
        ),
        (
            ["max-power-schedule", "set", "--acc-id", ACC, "--file", "/nonexistent.json"],
            "cannot read",
        ),
    ],
)
def test_bad_input_is_one_line_and_nothing_is_sent(
    env: Settings, api: Any, sim: Any, args: list[str], needle: str
) -> None:
    before = len(sim.requests_seen())
    code, out, err = api(*args)
    assert code == 1 and out == b""
    assert err.count("\n") == 1 and err.startswith("powerflex-etl: error: ") and needle in err
    assert len(sim.requests_seen()) == before


def test_api_errors_are_one_line(env: Settings, api: Any, sim: Any) -> None:
    sim.config.faults.fail_next = 10
    code, _, err = api("--base-url", env.base_url, "target-peak", "get", "--acc-id", ACC)
    last = err.strip().splitlines()[-1]
    assert code == 1 and "last status 503" in last and "/get_target_peak_power_kW/39" in last


def test_wrong_password_says_which_setting_to_fix(
    env: Settings, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERFLEX_PASSWORD", "Wrong-Secret-99")
    code, _out, err = api("login-check")
    assert code == 1 and "POWERFLEX_PASSWORD" in err and "Wrong-Secret-99" not in err


def test_no_password_flag_exists() -> None:
    # Typer vendors its own click: walk the tree by shape, not by click's classes
    api_group: Any = typer.main.get_command(app).commands["api"]  # type: ignore[attr-defined]
    flags = {opt for p in api_group.params for opt in getattr(p, "opts", [])}
    assert {"--base-url", "--username", "--insecure"} <= flags
    assert not any("pass" in f for f in flags)


def _walk(cmd: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, cmd
    if hasattr(cmd, "commands"):
        for name, sub in cmd.commands.items():
            yield from _walk(sub, f"{path} {name}")


def test_every_api_command_and_option_has_help() -> None:
    root: Any = typer.main.get_command(app)
    commands = list(_walk(root.commands["api"], "api"))
    assert len(commands) >= 14
    for path, cmd in commands:
        assert (cmd.help or "").strip(), f"{path} has no help"
        for p in cmd.params:
            if getattr(p, "param_type_name", "") == "option":
                assert (p.help or "").strip(), f"{path} {p.opts} has no help"


@pytest.fixture
def tls_fake(tmp_path: Path) -> Iterator[str]:
    yield from _serve(Fake(), _self_signed(tmp_path))


def test_insecure_flag_turns_tls_verification_off(
    tls_fake: str, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERFLEX_USERNAME", "demo")
    monkeypatch.setenv("POWERFLEX_PASSWORD", "any-password")
    code, _, err = api("--base-url", tls_fake, "login-check")
    assert code == 1 and "did not verify" in err and "POWERFLEX_VERIFY_TLS" in err
    code, out, err = api("--base-url", tls_fake, "--insecure", "login-check")
    assert code == 0, err
    assert json.loads(out)["logged_in"] is True


def test_module_entry_point_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "powerflex_etl", "api", "target-peak", "get", "--acc-id", "zz"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("powerflex-etl: error: acc_id 'zz'")
