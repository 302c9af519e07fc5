"""Settings: flags, then ``POWERFLEX_*`` environment variables, then defaults."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PowerUnit = Literal["kW", "W", "mW"]


class Settings(BaseSettings):
    """Everything the library needs to reach the API and the lake.

    Build one with keyword overrides for flags: ``Settings(lake="s3://b/p")``; any field
    not given comes from ``POWERFLEX_<FIELD>`` in the environment, else the default.
    """

    model_config = SettingsConfigDict(env_prefix="POWERFLEX_", extra="ignore")

    # no default: a placeholder host would only be retried until DNS gives up
    base_url: str = ""
    username: str = ""
    password: SecretStr = SecretStr("")
    verify_tls: bool = True
    connect_timeout_s: float = Field(default=10.0, gt=0)
    read_timeout_s: float = Field(default=300.0, gt=0)
    # retries for retryable failures (5xx, 429, timeouts, resets)
    max_attempts: int = Field(default=6, ge=1)
    retry_backoff_s: float = Field(default=0.5, ge=0)
    retry_max_total_s: float = Field(default=300.0, gt=0)
    # ... and for a whole run (one client), so a dead API fails a run, not each window slowly
    run_max_retries: int = Field(default=30, ge=0)
    run_retry_budget_s: float = Field(default=120.0, ge=0)
    # the body key carrying [start, stop) in epoch seconds
    window_key: str = "time_filter"
    # unit the API uses for ct_response.power
    power_unit: PowerUnit = "kW"
    # the largest answer accepted for one window, in bytes
    max_answer_bytes: int = Field(default=4 * 1024**3, gt=0)

    lake: str = "./lake"
    # where the DuckDB catalog lives for an object-store lake (a local lake keeps it inside)
    catalog_path: str | None = None
    # optional sites file: acc_id -> name, IANA time zone
    sites_file: str | None = None

    window_hours: float = Field(default=6.0, gt=0)
    lookback_hours: float = Field(default=2.0, ge=0)
    # optional client-side scoping: comma-separated ids
    acn_id: Annotated[list[str], NoDecode] = Field(default_factory=list)
    acc_id: Annotated[list[str], NoDecode] = Field(default_factory=list)
    acs_id: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("base_url")
    @classmethod
    def _strip_slash(cls, v: str) -> str:
        return v.rstrip("/")

    @field_validator("acn_id", "acc_id", "acs_id", mode="before")
    @classmethod
    def _split_ids(cls, v: object) -> object:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v
