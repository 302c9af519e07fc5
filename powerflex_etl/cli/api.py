"""`powerflex-etl api ...`: one subcommand per PowerFlex endpoint; answers printed as JSON.

A thin layer: input is checked here or by the client before anything is sent, and every
failure is a :class:`~powerflex_etl.errors.PowerflexError` that ``cli.main()`` prints as
one line. The password comes only from ``POWERFLEX_PASSWORD`` or a hidden prompt.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from powerflex_etl.cli.help import epilog
from powerflex_etl.errors import ConfigError

if TYPE_CHECKING:
    from powerflex_etl.api.client import PowerflexClient

# one example per endpoint, shown by the group and by the command itself
_MEASUREMENT_EXAMPLE = (
    "api measurement get --measurement ct_response --start 2024-06-01 --end 2024-06-01T01:00"
)
_SIGNAL_GET_EXAMPLE = "api external-signal get --acc-id 0039 --name DCM_EVSE_Allocation"
_SIGNAL_SET_EXAMPLE = (
    "api external-signal set --acc-id 0039 --name DCM_EVSE_Allocation"
    " --max-load 80 --unit kW --enabled"
)
_LOAD_EXAMPLE = "api real-time-load set --acc-id 0039 --kw 42"
_PEAK_GET_EXAMPLE = "api target-peak get --acc-id 0039"
_PEAK_SET_EXAMPLE = "api target-peak set --acc-id 0039 --month Jun=700 --month Jul=650"
_SCHEDULE_EXAMPLE = "api max-power-schedule set --acc-id 0039 --file schedule.json"

#: What ``max-power-schedule set --file`` reads (the shape live clients send; CONTRACT §1).
SCHEDULE_FORMAT = """The --file is one JSON object, e.g.:
  {"definition": [{"days": [1, 2, 3, 4, 5],
                   "schedule": [{"start_time": "00:00:00", "max_power": 80},
                                {"start_time": "07:00:00", "max_power": 40}]}],
   "max_power_units": "kW", "is_enabled": true, "timezone": "US/Pacific"}
  definition       non-empty list of {days, schedule}
  days             day numbers 1..7 (live clients send [1, ..., 7] for every day;
                   the vendor does not document which number is Monday)
  schedule         non-empty list of {start_time "HH:MM:SS", max_power >= 0}:
                   each limit holds from its start_time to the next one
  max_power_units  "kW" (default) or "A"
  is_enabled       true or false (optional)
  timezone         IANA zone of the start times, e.g. "US/Pacific" (optional)
It is checked before anything is sent; an error names the key that is wrong."""

api_app = typer.Typer(
    help="Call the PowerFlex API directly; answers are printed as JSON.",
    epilog=epilog(
        "api login-check",
        "api target-peak get --acc-id 0039",
        "api --base-url http://127.0.0.1:9443 --username demo login-check",
        credentials=True,
    ),
    no_args_is_help=True,
    rich_markup_mode=None,
)
measurement_app = typer.Typer(
    help="Time-series data (/get_measurement_data).",
    epilog=epilog(_MEASUREMENT_EXAMPLE, credentials=True),
    no_args_is_help=True,
    rich_markup_mode=None,
)
signal_app = typer.Typer(
    help="External signals (/get_external_signal, /set_external_signal).",
    short_help="Get or set external signals (DCM).",
    epilog=epilog(_SIGNAL_GET_EXAMPLE, _SIGNAL_SET_EXAMPLE, credentials=True),
    no_args_is_help=True,
    rich_markup_mode=None,
)
load_app = typer.Typer(
    help="The site's real-time load (/set_real_time_load).",
    epilog=epilog(_LOAD_EXAMPLE, credentials=True),
    no_args_is_help=True,
    rich_markup_mode=None,
)
peak_app = typer.Typer(
    help="Monthly target peak power in kW (/get_ and /set_target_peak_power_kW).",
    short_help="Get or set the monthly target peak power (kW).",
    epilog=epilog(_PEAK_GET_EXAMPLE, _PEAK_SET_EXAMPLE, credentials=True),
    no_args_is_help=True,
    rich_markup_mode=None,
)
schedule_app = typer.Typer(
    help="Max-power schedules (/set_max_power_schedule).",
    epilog=epilog(_SCHEDULE_EXAMPLE, credentials=True),
    no_args_is_help=True,
    rich_markup_mode=None,
)
api_app.add_typer(measurement_app, name="measurement")
api_app.add_typer(signal_app, name="external-signal")
api_app.add_typer(load_app, name="real-time-load")
api_app.add_typer(peak_app, name="target-peak")
api_app.add_typer(schedule_app, name="max-power-schedule")


@dataclass
class _Conn:
    """Connection overrides from the `api` callback; the rest comes from POWERFLEX_*."""

    base_url: str | None = None
    username: str | None = None
    insecure: bool = False


AccId = Annotated[
    str,
    typer.Option(
        "--acc-id", metavar="ID", help='Site id (acc_id), e.g. 3 or "03"; sent in integer form.'
    ),
]


@api_app.callback()
def api_main(
    ctx: typer.Context,
    base_url: Annotated[
        str | None,
        typer.Option("--base-url", metavar="URL", help="API base URL (POWERFLEX_BASE_URL)."),
    ] = None,
    username: Annotated[
        str | None,
        typer.Option("--username", metavar="NAME", help="Login name (POWERFLEX_USERNAME)."),
    ] = None,
    insecure: Annotated[
        bool,
        typer.Option(
            "--insecure", help="Do not verify the server's TLS certificate (POWERFLEX_VERIFY_TLS)."
        ),
    ] = False,
) -> None:
    """Connection: flags here, else POWERFLEX_* variables. The password only from
    POWERFLEX_PASSWORD (or a prompt on a terminal), never a flag."""
    ctx.obj = _Conn(base_url=base_url, username=username, insecure=insecure)


def _client(ctx: typer.Context) -> PowerflexClient:
    from pydantic import SecretStr, ValidationError

    from powerflex_etl.api.client import PowerflexClient
    from powerflex_etl.settings import Settings

    conn = ctx.find_object(_Conn) or _Conn()
    overrides: dict[str, Any] = {}
    if conn.base_url:
        overrides["base_url"] = conn.base_url
    if conn.username:
        overrides["username"] = conn.username
    if conn.insecure:
        overrides["verify_tls"] = False
    try:
        settings = Settings(**overrides)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"bad setting {field}: {first['msg']}")
    if not settings.password.get_secret_value() and sys.stdin.isatty():
        typed = typer.prompt("PowerFlex password", hide_input=True)
        settings = settings.model_copy(update={"password": SecretStr(typed)})
    return PowerflexClient(settings)


def _print(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=2))


@api_app.command(
    "login-check",
    short_help="Log in; print when the token expires.",
    epilog=epilog("api login-check", credentials=True),
)
def login_check(ctx: typer.Context) -> None:
    """Log in and print when the token expires (never the token)."""
    with _client(ctx) as client:
        exp = client.login_check()
        _print(
            {
                "base_url": client.settings.base_url,
                "username": client.settings.username,
                "logged_in": True,
                "token_expires": exp.isoformat() if exp else None,
            }
        )


@measurement_app.command("get", epilog=epilog(_MEASUREMENT_EXAMPLE, credentials=True))
def measurement_get(
    ctx: typer.Context,
    measurement: Annotated[
        str,
        typer.Option(
            "--measurement",
            metavar="M",
            help="ct_response, evse_request or evse_response.",
            show_default=False,
        ),
    ],
    start: Annotated[
        str, typer.Option("--start", metavar="T", help="ISO date/datetime, UTC unless given.")
    ],
    end: Annotated[str, typer.Option("--end", metavar="T", help="ISO date/datetime, exclusive.")],
) -> None:
    """Print the raw answer for start <= time < end, exactly as the API sent it."""
    from powerflex_etl.schemas import MEASUREMENTS
    from powerflex_etl.windows import Window, parse_time

    if measurement not in MEASUREMENTS:
        raise ConfigError(f"--measurement {measurement!r} is not one of {', '.join(MEASUREMENTS)}")
    window = Window(parse_time(start, name="--start"), parse_time(end, name="--end"))
    with _client(ctx) as client:
        body = client.get_measurement_data(measurement, window.start, window.end)
    sys.stdout.flush()
    sys.stdout.buffer.write(body)
    sys.stdout.buffer.flush()


@signal_app.command("get", epilog=epilog(_SIGNAL_GET_EXAMPLE, credentials=True))
def signal_get(
    ctx: typer.Context,
    acc_id: AccId,
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="Only this signal (default: all of them)."),
    ] = None,
) -> None:
    """Print the site's external signals, or the one named."""
    from powerflex_etl.api.checks import acc_path

    acc_path(acc_id)
    with _client(ctx) as client:
        _print(client.get_external_signal(acc_id, name))


@signal_app.command("set", epilog=epilog(_SIGNAL_SET_EXAMPLE, credentials=True))
def signal_set(
    ctx: typer.Context,
    acc_id: AccId,
    name: Annotated[
        str, typer.Option("--name", metavar="NAME", help="Signal name, e.g. DCM_EVSE_Allocation.")
    ],
    max_load: Annotated[
        float, typer.Option("--max-load", metavar="X", help="Maximum aggregate load, in --unit.")
    ],
    unit: Annotated[str, typer.Option("--unit", metavar="UNIT", help="kW or A.")],
    enabled: Annotated[
        bool, typer.Option("--enabled/--disabled", help="Turn the signal on or off.")
    ],
) -> None:
    """Create or change an external signal; prints what the API sends back."""
    from powerflex_etl.api.checks import acc_path, check_signal

    acc_path(acc_id)
    body = check_signal(name, max_load, unit, enabled)
    with _client(ctx) as client:
        _print(
            client.set_external_signal(
                acc_id,
                name=name,
                max_load=max_load,
                max_load_unit=body["max_load_unit"],
                is_enabled=enabled,
            )
        )


@load_app.command("set", epilog=epilog(_LOAD_EXAMPLE, credentials=True))
def load_set(
    ctx: typer.Context,
    acc_id: AccId,
    kw: Annotated[
        int, typer.Option("--kw", metavar="KW", help="Real-time load of the site, whole kW.")
    ],
) -> None:
    """Report the site's real-time load."""
    from powerflex_etl.api.checks import acc_path

    acc_path(acc_id)
    with _client(ctx) as client:
        _print(client.set_real_time_load(acc_id, kw))


@peak_app.command("get", epilog=epilog(_PEAK_GET_EXAMPLE, credentials=True))
def peak_get(ctx: typer.Context, acc_id: AccId) -> None:
    """Print the target peak power (kW) of every month."""
    from powerflex_etl.api.checks import acc_path

    acc_path(acc_id)
    with _client(ctx) as client:
        _print(calendar_order(client.get_target_peak_power(acc_id)))


@peak_app.command("set", epilog=epilog(_PEAK_SET_EXAMPLE, credentials=True))
def peak_set(
    ctx: typer.Context,
    acc_id: AccId,
    month: Annotated[
        list[str],
        typer.Option(
            "--month", metavar="MONTH=KW", help="MONTH=KW, e.g. Jun=700; repeat for more months."
        ),
    ],
) -> None:
    """Set the target peak power of some months; prints all twelve."""
    from powerflex_etl.api.checks import acc_path, check_months

    acc_path(acc_id)
    months = check_months(parse_months(month))
    with _client(ctx) as client:
        _print(calendar_order(client.set_target_peak_power(acc_id, months)))


@schedule_app.command(
    "set", epilog=epilog(_SCHEDULE_EXAMPLE, notes=[SCHEDULE_FORMAT], credentials=True)
)
def schedule_set(
    ctx: typer.Context,
    acc_id: AccId,
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            metavar="FILE",
            help="JSON file holding the schedule (format below).",
        ),
    ],
) -> None:
    """Send a max-power schedule read from a JSON file (its format is below)."""
    from powerflex_etl.api.checks import acc_path, check_schedule

    acc_path(acc_id)
    try:
        schedule = json.loads(file.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read schedule file {file}: {err.strerror or err}")
    except ValueError as err:
        raise ConfigError(f"schedule file {file} is not JSON: {err}")
    check_schedule(schedule)
    with _client(ctx) as client:
        _print(client.set_max_power_schedule(acc_id, schedule))


def parse_months(items: list[str]) -> dict[str, int]:
    """``["Jun=700", "Jul=555"]`` -> ``{"Jun": 700, "Jul": 555}`` (names checked later)."""
    out: dict[str, int] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[name.strip()] = int(value.strip())
        except ValueError:
            raise ConfigError(f"--month {item!r} is not MONTH=KW", hint="e.g. --month Jun=700")
    return out


def calendar_order(months: dict[str, Any]) -> dict[str, Any]:
    """``{"Apr": .., "Jan": ..}`` -> Jan..Dec first (the API's own order is alphabetical), then any other key."""
    from powerflex_etl.schemas import MONTHS

    ordered = {m: months[m] for m in MONTHS if m in months}
    return ordered | {k: v for k, v in months.items() if k not in ordered}
