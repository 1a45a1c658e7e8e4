"""Settings: read once from the environment and `.env`, validated, and passed down explicitly.

This is the only module that reads `os.environ`. It lives in `core`, the package every layer may import.

Not `pydantic-settings`: keeping this behaviour on it took a custom environment source, a before-validator for
DATABASE_PATH and this same `.env` + environment merge for `env_value`; it still let GOOGLE_API_KEY in the
environment beat GEMINI_API_KEY in `.env`, could not forbid unknown fields (it rejects unrelated `.env` lines),
and was 5x (with a `.env`) to 150x (without) slower per `from_env`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from typing import Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, ValidationError, field_validator

# MODELS_FILE's default, looked for in the working directory when the process environment is read.
DEFAULT_MODELS_FILE = "models.yaml"

# Environment variable -> settings field. Listed once so errors can name the variable.
ENV_VARS: dict[str, str] = {
    "DATABASE_URL": "database_url",
    "HOST": "host",
    "FLASK_PORT": "port",
    "DEBUG": "debug",
    "LOG_LEVEL": "log_level",
    "GEMINI_API_KEY": "gemini_api_key",
    "GEMINI_BASE_URL": "gemini_base_url",
    "GEMINI_TIMEOUT": "gemini_timeout",
    "GEMINI_MAX_ATTEMPTS": "gemini_max_attempts",
    "ANTHROPIC_API_KEY": "anthropic_api_key",
    "ANTHROPIC_BASE_URL": "anthropic_base_url",
    "ANTHROPIC_TIMEOUT": "anthropic_timeout",
    "ANTHROPIC_MAX_ATTEMPTS": "anthropic_max_attempts",
    "STREAM_TIMEOUT": "stream_timeout",
    "LOCAL_MODEL_PATH": "local_model_path",
    "LOCAL_MODEL_THREADS": "local_model_threads",
    "DEFAULT_MODEL": "default_model",
    "PRICING_FILE": "pricing_file",
    "MODELS_FILE": "models_file",
    "LOG_PROMPTS": "log_prompts",
    "LOG_PROMPTS_MAX_CHARS": "log_prompts_max_chars",
    "RETENTION_DAYS": "retention_days",
    "MAX_CONTENT_LENGTH": "max_content_length",
    "API_KEYS": "api_keys",
    "SECRET_KEY": "secret_key",
    "METRICS_REQUIRE_KEY": "metrics_require_key",
    "RATE_LIMIT": "rate_limit",
    "RATE_LIMIT_STORAGE_URL": "rate_limit_storage_url",
    "REDIS_URL": "redis_url",
    "ALERT_WEBHOOK_URL": "alert_webhook_url",
    "CACHE_ENABLED": "cache_enabled",
    "CACHE_TTL_SECONDS": "cache_ttl_seconds",
    "CACHE_SEMANTIC": "cache_semantic",
    "CACHE_URL": "cache_url",
    "CACHE_MEMORY_MB": "cache_memory_mb",
    "ANOMALY_CHECK_SECONDS": "anomaly_check_seconds",
    "HEALTH_PROBE_SECONDS": "health_probe_seconds",
    "WEB_CONCURRENCY": "web_workers",
    "WEB_THREADS": "web_threads",
    "WEB_WORKER_CLASS": "web_worker_class",
    "WEB_GRACEFUL_TIMEOUT": "web_graceful_timeout",
    "WEB_PRELOAD": "web_preload",
    "DB_POOL_SIZE": "db_pool_size",
    "DB_MAX_OVERFLOW": "db_max_overflow",
    "RUN_HEARTBEAT_SECONDS": "run_heartbeat_seconds",
    "WEBHOOK_ALLOW_PRIVATE": "webhook_allow_private",
    "JOBS_URL": "jobs_url",
    "JOBS_QUEUE": "jobs_queue",
    "JOBS_CONCURRENCY": "jobs_concurrency",
    "JOBS_POLL_SECONDS": "jobs_poll_seconds",
    "BATCH_CONCURRENCY": "batch_concurrency",
    "BATCH_MODEL_CONCURRENCY": "batch_model_concurrency",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "otel_exporter_otlp_endpoint",
    "OTEL_SERVICE_NAME": "otel_service_name",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "otel_capture_message_content",
}


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the environment variable."""


class Settings(BaseModel):
    """Every configurable value of the service, with its default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str = "sqlite:///ai_models.db"
    host: str = "127.0.0.1"
    port: int = Field(default=5000, ge=1, le=65535)
    debug: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str | None = None
    gemini_timeout: float = Field(default=60.0, gt=0)
    gemini_max_attempts: int = Field(default=4, ge=1, le=20)
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str | None = None
    anthropic_timeout: float = Field(default=60.0, gt=0)
    anthropic_max_attempts: int = Field(default=4, ge=1, le=20)
    # Seconds a streamed answer may take from its first byte to its end (per-read timeouts miss a drip).
    stream_timeout: float = Field(default=600.0, gt=0)
    local_model_path: str | None = None
    local_model_threads: int | None = Field(default=None, ge=1)
    default_model: str | None = None
    pricing_file: str | None = None
    models_file: str | None = None
    log_prompts: Literal["full", "truncate", "none"] = "full"
    log_prompts_max_chars: int = Field(default=2000, ge=0)
    retention_days: int | None = Field(default=None, ge=1)
    max_content_length: int = Field(default=1024 * 1024, ge=1024)
    api_keys: SecretStr | None = None
    # Signs the dashboard's session cookies; unset, a random secret the database keeps for every worker.
    secret_key: SecretStr | None = None
    metrics_require_key: bool = False
    rate_limit: str | None = None
    rate_limit_storage_url: str | None = None
    # Shared state across hosts in Redis: circuit breakers (instead of the database), routing statistics (instead
    # of each process's own), and the cache and rate limits unless CACHE_URL / RATE_LIMIT_STORAGE_URL say otherwise
    redis_url: str | None = None
    # The response cache: off unless enabled here (every model) or per model/group in the models file; answers kept
    # CACHE_TTL_SECONDS; in Redis when CACHE_URL is set, else the database; CACHE_MEMORY_MB in each process first.
    # CACHE_SEMANTIC: that policy also matches by meaning, with the default embedding model and threshold.
    cache_enabled: bool = False
    cache_ttl_seconds: int = Field(default=3600, ge=1, le=365 * 86_400)
    cache_semantic: bool = False
    cache_url: str | None = None
    cache_memory_mb: int = Field(default=64, ge=0, le=65_536)
    # Model anomalies (monitoring.model_health): checked this often by every serving process, each episode raised
    # once and POSTed to ALERT_WEBHOOK_URL when set (the budget webhooks' SSRF policy applies).
    alert_webhook_url: str | None = None
    anomaly_check_seconds: float = Field(default=30.0, gt=0, le=3600)
    # Active health probes: every this many seconds, a 1-token call to each model a group routes to (they cost
    # what such a call costs, recorded with source `probe`). Unset: no probes; real calls are the probes.
    health_probe_seconds: float | None = Field(default=None, ge=5, le=86_400)
    # The production server (gunicorn.conf.py): processes, threads per process, worker class, and the
    # seconds in-flight requests get to finish after SIGTERM; preload imports the app once before forking.
    web_workers: int = Field(default=2, ge=1, le=64)
    # 200 per process would hold 200 calls however unevenly the kernel spreads connections (2 x 100 -> 57% of
    # (c), 2 x 200 -> 92%); 1000, so that clients trickling request bodies (each holds a thread until its body
    # is in) cannot take them all: with 450 of them, 2 x 200 stops answering, 2 x 1000 does not (bench (e)).
    # Threads start only when needed.
    web_threads: int = Field(default=1000, ge=1, le=4000)
    web_worker_class: Literal["gthread", "gevent"] = "gthread"
    web_graceful_timeout: int = Field(default=120, ge=1)
    web_preload: bool = True
    # PostgreSQL connections per process: workers x (pool + overflow) must stay under the server's
    # max_connections (100 by default); a connection is held only for one short unit of work.
    db_pool_size: int = Field(default=10, ge=1, le=500)
    db_max_overflow: int = Field(default=10, ge=0, le=500)
    # Workflow and benchmark runs: their driver refreshes a heartbeat this often; every live process sweeps as often,
    # and marks `interrupted` the runs silent for 4 heartbeats (their process died).
    run_heartbeat_seconds: float = Field(default=15.0, gt=0, le=3600)
    # Let budget webhooks go to loopback, private and link-local addresses (refused by default: SSRF).
    webhook_allow_private: bool = False
    # Background jobs (benchmarks, batches, async workflows, rollups, rollout steps): on RQ workers over Redis at
    # JOBS_URL (else REDIS_URL; queues named JOBS_QUEUE:high|default|low), else on JOBS_CONCURRENCY threads of each
    # serving process, which look for due jobs every JOBS_POLL_SECONDS. A batch job works on BATCH_CONCURRENCY items
    # at once; at most BATCH_MODEL_CONCURRENCY batch items call one model at a time across every process.
    jobs_url: str | None = None
    jobs_queue: str = Field(default="jobs", pattern=r"^[A-Za-z0-9_.:-]{1,100}$")
    jobs_concurrency: int = Field(default=4, ge=1, le=256)
    jobs_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    batch_concurrency: int = Field(default=8, ge=1, le=256)
    batch_model_concurrency: int = Field(default=4, ge=1, le=1000)
    # OpenTelemetry (monitoring.telemetry): GenAI spans and metrics go over OTLP/HTTP to this base URL (its
    # /v1/traces and /v1/metrics); unset, nothing is built or exported. The SDK reads the other OTEL_* variables.
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = Field(default="ai-model-manager", min_length=1)
    # Prompts and answers go into spans (gen_ai.input.messages / gen_ai.output.messages) only when opted in.
    otel_capture_message_content: bool = False
    # Every variable seen by `from_env`, for variables that configuration names (e.g. `api_key_env`).
    _env: dict[str, str] | None = PrivateAttr(default=None)

    @field_validator("rate_limit")
    @classmethod
    def _parse_rate_limit(cls, value: str | None) -> str | None:
        if value is not None:
            from limits import parse_many

            parse_many(value)  # raises ValueError naming the problem, e.g. for "60 per fortnight"
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @property
    def cache_store_url(self) -> str | None:
        """Where cached answers live: CACHE_URL, else REDIS_URL; None keeps them in the database."""
        return self.cache_url or self.redis_url

    @property
    def rate_limit_store_url(self) -> str | None:
        """Where rate-limit counters live: RATE_LIMIT_STORAGE_URL, else REDIS_URL; None keeps them per process."""
        return self.rate_limit_storage_url or self.redis_url

    @property
    def jobs_redis_url(self) -> str | None:
        """Where background jobs are queued: JOBS_URL, else REDIS_URL; None runs them in-process."""
        return self.jobs_url or self.redis_url

    @property
    def has_gemini_key(self) -> bool:
        return self.gemini_api_key is not None and bool(self.gemini_api_key.get_secret_value())

    @property
    def has_anthropic_key(self) -> bool:
        return self.anthropic_api_key is not None and bool(self.anthropic_api_key.get_secret_value())

    def env_value(self, name: str) -> str | None:
        """A variable named by configuration, read from the same sources as the settings; None if unset or empty."""
        source = self._env if self._env is not None else os.environ
        return source.get(name) or None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        env_file: str | None = ".env",
        overrides: Mapping[str, object] | None = None,
    ) -> Settings:
        """Build settings from `.env`, then the process environment, then `overrides` (by variable name)."""
        source: dict[str, object] = {}
        if env_file and os.path.exists(env_file):
            source.update(dotenv_values(env_file))
        source.update(os.environ if environ is None else environ)
        source.update(overrides or {})
        values: dict[str, object] = {}
        for var, field in ENV_VARS.items():
            raw = source.get(var)
            if raw not in (None, ""):
                values[field] = raw
        if "database_url" not in values and source.get("DATABASE_PATH"):
            values["database_url"] = f"sqlite:///{source['DATABASE_PATH']}"
        if "gemini_api_key" not in values and source.get("GOOGLE_API_KEY"):
            values["gemini_api_key"] = source["GOOGLE_API_KEY"]
        if "models_file" not in values and environ is None and os.path.isfile(DEFAULT_MODELS_FILE):
            values["models_file"] = os.path.abspath(DEFAULT_MODELS_FILE)  # ambient, like os.environ
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            raise SettingsError(_describe(exc)) from None
        settings._env = {name: value for name, value in source.items() if isinstance(value, str)}
        return settings


def _describe(exc: ValidationError) -> str:
    by_field = {field: var for var, field in ENV_VARS.items()}
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        problems.append(f"{by_field.get(field, field)}: {error['msg']}")
    return "Invalid configuration: " + "; ".join(problems)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once on first use."""
    return Settings.from_env()
