"""The composition root: builds the registry, repositories and services once, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import Engine

from models.model_registry import ModelRegistry
from storage.database import get_engine
from storage.request_log import RequestLogRepository
from storage.settings import Settings

EXTENSION_KEY = "ai_model_manager"


@dataclass
class Services:
    """Everything the blueprints call into; built by `build_services`."""

    settings: Settings
    engine: Engine
    registry: ModelRegistry
    request_log: RequestLogRepository


def build_services(settings: Settings, *, register_default_models: bool = True) -> Services:
    """Wire the whole product for one database. `main.py` and `create_app` both use this."""
    engine = get_engine(settings.database_url)
    registry = ModelRegistry(engine, settings=settings, register_defaults=register_default_models)
    return Services(
        settings=settings,
        engine=engine,
        registry=registry,
        request_log=RequestLogRepository(engine),
    )


def services(app: Flask | None = None) -> Services:
    """The services of `app`, by default the app handling the current request."""
    return (app or current_app).extensions[EXTENSION_KEY]
