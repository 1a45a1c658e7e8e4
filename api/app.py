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
from flask_openapi3 import OpenAPI

from api.auth import Authenticator, register_auth
from api.cli import register_cli
from api.comparison_cli import register_comparison_cli
from api.errors import register_error_handlers
from api.health import SERVICE_NAME, VERSION
from api.openapi import create_openapi_app
from api.rate_limits import register_rate_limits
from api.request_context import register_request_context
from api.wiring import EXTENSION_KEY, build_services, services
from core.settings import Settings


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` may hold a `SETTINGS` object, env-style overrides, or Flask keys."""
    config = dict(config or {})
    settings = config.pop("SETTINGS", None) or Settings.from_env(
        overrides={k: v for k, v in config.items() if k.isupper() and not k.startswith("FLASK_")}
    )
    _configure_logging(settings)
    app = create_openapi_app(__name__, SERVICE_NAME, VERSION)
    app.config.from_mapping(MAX_CONTENT_LENGTH=settings.max_content_length)
    app.json.sort_keys = False  # keep the documented key order in responses
    app.config.update({k: v for k, v in config.items() if k.isupper()})
    app.extensions[EXTENSION_KEY] = build_services(
        settings, register_default_models=config.get("REGISTER_DEFAULT_MODELS", True)
    )
    register_error_handlers(app)
    register_request_context(app)
    register_auth(app, Authenticator(settings, services(app).api_keys))
    register_rate_limits(app, settings)
    register_cli(app)
    register_comparison_cli(app)
    _register_blueprints(app)
    return app


def _register_blueprints(app: OpenAPI) -> None:
    from api import budgets, comparison, docs, experiments, generate, health, monitoring, workflows

    for module in (health, generate, experiments, workflows, comparison, monitoring, budgets):
        app.register_api(module.bp)
    app.register_blueprint(docs.bp)


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().setLevel(settings.log_level)


def main() -> None:
    settings = Settings.from_env()
    app = create_app({"SETTINGS": settings})
    app.run(host=settings.host, port=settings.port, debug=settings.debug, threaded=True)


if __name__ == "__main__":
    main()
