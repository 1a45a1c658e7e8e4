"""Application factory. Run the development server with `python api/app.py`."""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # started as `python api/app.py`: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask_openapi3 import OpenAPI

from api.auth import Authenticator, register_auth
from api.batch_runner import register_batch_jobs
from api.cache import register_cache_warm_jobs
from api.chunked_body import register_chunked_body_limit
from api.cli import register_cli
from api.comparison_cli import register_comparison_cli
from api.dashboard import register_dashboard
from api.errors import register_error_handlers
from api.health import SERVICE_NAME, VERSION
from api.http_tracing import register_http_tracing
from api.input_guard import register_input_guard
from api.key_policy import KeyPolicyGuard
from api.key_store import ApiKeyStore
from api.openapi import create_openapi_app
from api.rate_limits import register_rate_limits
from api.request_context import register_request_context
from api.services import EXTENSION_KEY, KEYS_EXTENSION_KEY, api_keys, services
from core.settings import Settings
from monitoring.telemetry import Telemetry
from storage.minute_usage import MinuteUsage
from wiring import build_services


def create_app(settings: Settings | None = None, flask_config: Mapping[str, Any] | None = None, *,
               telemetry: Telemetry | None = None) -> Flask:
    """Build the app on `settings` (default: the environment and `.env`); `flask_config` sets Flask keys;
    `telemetry` replaces the OpenTelemetry wiring the settings give (tests pass in-memory exporters)."""
    settings = settings or Settings.from_env()
    _configure_logging(settings)
    app = create_openapi_app(__name__, SERVICE_NAME, VERSION)
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.max_content_length)
    app.config.update(flask_config or {})
    assert isinstance(app.json, DefaultJSONProvider)
    app.json.sort_keys = False  # keep the documented key order in responses
    app.extensions[EXTENSION_KEY] = build_services(settings, telemetry)
    if (traced := services(app).telemetry) is not None:  # first: a request refused by a later hook is traced too
        register_http_tracing(app, traced)
    for chore in services(app).periodic_chores():  # in each worker, not in a pre-fork master
        app.before_request(chore.ensure_started)
    app.extensions[KEYS_EXTENSION_KEY] = keys = ApiKeyStore(services(app).engine)
    services(app).registry.add_hook(KeyPolicyGuard(keys, MinuteUsage(keys.engine)))  # every call made with a key
    register_error_handlers(app)
    register_request_context(app)
    register_auth(app, Authenticator(settings, api_keys(app)))
    register_rate_limits(app, settings)
    register_input_guard(app)  # after auth and rate limits: refused callers' bodies are never parsed
    register_chunked_body_limit(app)
    register_cli(app)
    register_comparison_cli(app)
    _register_blueprints(app)
    register_batch_jobs(app)
    register_cache_warm_jobs(app)
    register_dashboard(app, settings)
    return app


def _register_blueprints(app: OpenAPI) -> None:
    from api import (
        batches,
        budgets,
        cache,
        comparison,
        costs,
        docs,
        experiments,
        gateway,
        gateway_embeddings,
        generate,
        health,
        jobs,
        keys,
        model_versions,
        monitoring,
        prompts,
        rollouts,
        workflows,
    )

    for module in (health, generate, gateway, gateway_embeddings, experiments, workflows, comparison, monitoring,
                   budgets, keys, cache, costs, prompts, model_versions, rollouts, batches, jobs):
        app.register_api(module.bp)
    app.register_blueprint(docs.bp)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(settings.log_level)


def main() -> None:
    settings = Settings.from_env()
    app = create_app(settings)
    app.run(host=settings.host, port=settings.port, debug=settings.debug, threaded=True)


if __name__ == "__main__":
    main()
