"""Simulator settings and the fault switches tests flip at runtime."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Faults:
    """Misbehaviours of the server; all off by default, read on every request."""

    latency_s: float = 0.0
    # fraction of requests answered 503 (seeded RNG)
    error_rate: float = 0.0
    # fraction answered 429 with Retry-After
    rate_limit_rate: float = 0.0
    retry_after_s: float = 1.0
    # the next N requests (other than /login) get 503; decremented as they are served
    fail_next: int = 0
    # the next N requests (other than /login) get 429 + Retry-After
    rate_limit_next: int = 0
    # measurement bodies cut in the middle; the connection closes after the prefix
    truncate: bool = False
    # if non-empty, only these measurements are truncated
    truncate_measurements: frozenset[str] | set[str] = frozenset()
    # time as RFC 3339 strings instead of epoch float seconds
    rfc3339: bool = False
    # one series per EVSE, ids moved into "tags" and out of "columns"
    split_tags: bool = False
    # answer wrapped as {"data": {...}} (as live clients read it)
    wrap_data: bool = False
    # serve the whole UTC day(s) around the window instead of the window
    ignore_time_filter: bool = False
    # InfluxDB row limit: the answer stops there, chunked, last document "partial": true
    max_rows: int | None = None
    # several newline-separated JSON documents (InfluxDB chunked), the last one complete
    chunked: bool = False
    # measurements this account may not read: answered 403
    forbidden: frozenset[str] | set[str] = frozenset()
    # a token is refused (401) once it has been accepted this many times (0: never)
    token_max_uses: int = 0
    # one session per account: a login revokes every token issued before it
    single_session: bool = False
    # every N accepted requests the account logs in elsewhere (a nightly run beside a
    # backfill): every token issued so far is revoked (0: never)
    foreign_login_every: int = 0


@dataclass
class SimulatorConfig:
    """What the simulator serves and how; ``faults`` may be replaced or mutated at runtime."""

    seed: int = 0
    # ct_response cadence; real telemetry is 3-5 s
    sample_period_s: float = 60.0
    sites: tuple[str, ...] = ("caltech",)
    username: str = "demo"
    password: str = "demo-password"
    token_lifetime_s: float = 86400.0
    window_key: str = "time_filter"
    faults: Faults = field(default_factory=Faults)
    # per site, ids to use instead of the real ones, e.g. {"caltech": {"acc_id": "03"}}
    id_overrides: dict[str, dict[str, str]] = field(default_factory=dict)
