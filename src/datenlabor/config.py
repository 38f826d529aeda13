"""Settings in one place.

Values come, in this order of precedence, from keyword arguments, ``DATENLABOR_*``
environment variables, a TOML config file and the defaults below. The config file is
``DATENLABOR_CONFIG`` if set, else ``datenlabor.toml`` inside the pool directory.

Example ``datenlabor.toml``::

    database_url = "postgresql+psycopg://datenlabor@db.example/datenlabor"
    default_user = "analyst@bmi.bund.de"
"""

from __future__ import annotations

import getpass
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from datenlabor.errors import BadInput

CONFIG_FILE_NAME = "datenlabor.toml"


def usable_cpus() -> int:
    """CPUs this process may run on. DuckDB's default is every CPU of the machine, even when
    the process is confined to fewer (taskset, cgroup cpusets, a container's cpuset): its
    threads then contend for the same core, and a rows page cost 1.7x the CPU (2.1 instead
    of 1.2 ms on a server pinned to one of two cores)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Settings(BaseSettings):
    """Datenlabor settings; see the module docstring for where they come from."""

    model_config = SettingsConfigDict(env_prefix="DATENLABOR_", extra="forbid")

    pool: Path = Field(default=Path("datenlabor-pool"), description="Pool directory")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the metadata store; default: SQLite file in the pool",
    )
    user: str = Field(default_factory=lambda: _default_user(), description="Who acts")
    lock_timeout_s: float = Field(default=600.0, description="Wait for a dataset lock")
    csv_sample_bytes: int = Field(default=4 * 1024 * 1024, description="Bytes sniffed")
    duckdb_memory: str = Field(default="600MB", description="DuckDB memory limit per job")
    # -- engines (datenlabor.engines; docs/scale-out.md) -------------------------------------
    engine: Literal["duckdb", "spark"] = Field(
        default="duckdb", description="Engine for SQL, KPIs, quality checks: duckdb or spark"
    )
    spark_master: str = Field(
        default="local[2]",
        description="Spark master URL: local[N], spark://host:7077, yarn, k8s://…",
    )
    spark_conf: dict[str, str] = Field(
        default_factory=dict,
        description='Extra Spark settings (JSON in the environment: {"spark.executor.memory": "8g"})',
    )
    # -- service --------------------------------------------------------------------------
    cache_bytes: int = Field(
        default=512 * 1024**2,
        description="Versions kept in memory by the service (uncompressed bytes)",
    )
    service_memory: str = Field(default="1GB", description="DuckDB memory limit of the service")
    result_cache_bytes: int = Field(
        default=64 * 1024**2,
        description="Rows pages kept per service process for repeated requests (0: off)",
    )
    sql_timeout_s: float = Field(default=30.0, description="Time limit of one API SQL query")
    sql_max_rows: int = Field(default=10_000, description="Rows one API SQL query returns")
    max_upload_bytes: int = Field(default=5 * 1024**3, description="Largest accepted upload")
    retention_days: int = Field(default=30, description="Days a deleted dataset is kept")
    secure_cookies: bool = Field(default=False, description="Send cookies only over HTTPS")
    public_url: str = Field(
        default="http://127.0.0.1:8000", description="Public base URL (links in DCAT exports)"
    )
    dcat_contributor_id: str | None = Field(
        default=None,
        description="dcatde:contributorID assigned by GovData (http://dcat-ap.de/def/contributors/…)",
    )
    oidc_issuer: str | None = Field(default=None, description="OpenID Connect issuer URL")
    oidc_client_id: str | None = Field(default=None, description="OIDC client id")
    oidc_client_secret: str | None = Field(default=None, description="OIDC client secret")
    oidc_default_org: str | None = Field(
        default=None, description="Organisation of first-time OIDC users (else: refused)"
    )
    oidc_default_role: str = Field(default="viewer", description="Role of first-time OIDC users")
    # -- GENESIS web service (datenlabor.interop.genesis_ws) ---------------------------------
    genesis_database: str = Field(
        default="destatis",
        description="Default GENESIS database: destatis, regionalstatistik or zensus",
    )
    genesis_url: str = Field(
        default="https://www-genesis.destatis.de/genesisWS/rest/2020/",
        description="GENESIS-Online (Destatis) REST 2020 base URL",
    )
    genesis_regionalstatistik_url: str = Field(
        default="https://www.regionalstatistik.de/genesisws/rest/2020/",
        description="Regionaldatenbank Deutschland REST 2020 base URL",
    )
    genesis_zensus_url: str = Field(
        default="https://ergebnisse.zensus2022.de/api/rest/2020/",
        description="Zensus 2022 database REST 2020 base URL",
    )
    genesis_username: str | None = Field(default=None, description="GENESIS-Online user name")
    genesis_password: SecretStr | None = Field(default=None, description="GENESIS-Online password")
    genesis_token: SecretStr | None = Field(
        default=None, description="GENESIS-Online API token (instead of user name and password)"
    )
    genesis_regionalstatistik_username: str | None = Field(
        default=None, description="Regionaldatenbank user name (default: genesis_username)"
    )
    genesis_regionalstatistik_password: SecretStr | None = Field(
        default=None, description="Regionaldatenbank password"
    )
    genesis_regionalstatistik_token: SecretStr | None = Field(
        default=None, description="Regionaldatenbank API token"
    )
    genesis_zensus_username: str | None = Field(
        default=None, description="Zensus 2022 database user name (default: genesis_username)"
    )
    genesis_zensus_password: SecretStr | None = Field(
        default=None, description="Zensus 2022 database password"
    )
    genesis_zensus_token: SecretStr | None = Field(
        default=None, description="Zensus 2022 database API token"
    )
    genesis_timeout_s: float = Field(default=120.0, description="Wait for one GENESIS answer")
    genesis_retries: int = Field(default=3, description="Retries of a failed GENESIS request")
    genesis_job_timeout_s: float = Field(
        default=1800.0, description="Overall limit for one GENESIS table, background jobs included"
    )
    genesis_poll_s: float = Field(default=10.0, description="Pause between GENESIS job polls")
    # -- AI assistance: LLM endpoint and knowledge base (datenlabor.assist) -----------------
    assist_llm_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible endpoint (…/v1); unset: no LLM is used",
    )
    assist_llm_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for the LLM endpoint"
    )
    assist_llm_model: str = Field(default="default", description="Model name sent to the endpoint")
    assist_llm_timeout_s: float = Field(default=60.0, description="Wait for one LLM answer")
    assist_llm_retries: int = Field(default=2, description="Retries on timeouts, 429 and 5xx")
    assist_llm_external: bool = Field(
        default=True,
        description="The endpoint is outside the authority: personal data is redacted first",
    )
    # -- AI assistance: inbox and triage (datenlabor.assist.inbox/triage) ------------------
    assist_inbox_dataset: str = Field(
        default="posteingang", description="Pool dataset that holds incoming requests"
    )
    assist_taxonomy: Path | None = Field(
        default=None, description="Triage taxonomy (JSON); unset: the embedded LeiKa subset"
    )
    assist_min_confidence: float = Field(
        default=0.6,
        ge=0.0,
        le=1.0,
        description="Below this confidence triage routes to a person without a suggestion",
    )
    assist_triage_llm: bool = Field(
        default=False,
        description="Ask the LLM endpoint to classify (embedded model as fallback)",
    )

    @field_validator("pool", mode="before")
    @classmethod
    def _expand(cls, value: Any) -> Any:
        return Path(value).expanduser() if isinstance(value, str | Path) else value

    @property
    def metadata_url(self) -> str:
        """The metadata store URL, defaulting to ``<pool>/metadata.sqlite``."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.pool / 'metadata.sqlite').resolve()}"


def _default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return "unknown"


def load_settings(**overrides: Any) -> Settings:
    """Build settings from overrides, environment and the config file.

    >>> load_settings(pool="/tmp/p").metadata_url
    'sqlite:////tmp/p/metadata.sqlite'
    """
    overrides = {k: v for k, v in overrides.items() if v is not None}
    pool = overrides.get("pool") or os.environ.get("DATENLABOR_POOL") or "datenlabor-pool"
    config_path = os.environ.get("DATENLABOR_CONFIG")
    path = Path(config_path) if config_path else Path(pool).expanduser() / CONFIG_FILE_NAME
    from_file: dict[str, Any] = {}
    if path.is_file():
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise BadInput(f"invalid config file: {exc}", file=str(path)) from exc
    elif config_path:
        raise BadInput("config file not found", file=str(path))
    # Environment beats the file, explicit overrides beat both: pydantic-settings gives
    # init kwargs priority over env, so only pass file values the env does not set.
    env_set = {k[len("DATENLABOR_") :].lower() for k in os.environ if k.startswith("DATENLABOR_")}
    merged = {k: v for k, v in from_file.items() if k not in env_set}
    merged.update(overrides)
    try:
        return Settings(**merged)
    except ValueError as exc:
        raise BadInput(f"invalid settings: {exc}", file=str(path) if from_file else None) from exc
