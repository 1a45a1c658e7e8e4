"""Shared set-up for the A/B tests (a pytest plugin, loaded by conftest): fake models, fixtures, outcome helpers."""

from __future__ import annotations

import pytest

from ab_testing.experiment_manager import ExperimentManager
from ab_testing.traffic_router import TrafficRouter
from core.settings import Settings
from models.model_registry import ModelRegistry
from storage.database import create_db_engine, upgrade_schema
from tests.fakes import FakeModel


def build(engine, settings: Settings) -> tuple[ExperimentManager, TrafficRouter, dict[str, FakeModel]]:
    """A manager and router over `engine`, with fake models "model-a" and "model-b" registered."""
    registry = ModelRegistry(engine, settings=settings, register_defaults=False)
    models = {name: FakeModel(name) for name in ("model-a", "model-b", "model-c")}
    for model in models.values():
        registry.register_model(model)
    manager = ExperimentManager(engine, registry=registry)
    return manager, TrafficRouter(registry, manager), models


@pytest.fixture
def ab(engine, settings):
    """On SQLite and PostgreSQL: for behaviour that depends on the database (locks, conflicts, sums)."""
    return build(engine, settings)


@pytest.fixture
def ab_sqlite(sqlite_url, settings):
    """SQLite only: for behaviour the database does not change (validation, analysis, call path)."""
    engine = create_db_engine(sqlite_url)
    upgrade_schema(engine)
    yield build(engine, settings)
    engine.dispose()


def outcomes(variant: str, n: int, successes: int, **extra) -> list[dict]:
    return [{"variant": variant, "success": i < successes, **extra} for i in range(n)]


def general(**overrides) -> dict:
    """A running two-variant general experiment; overrides replace top-level keys."""
    spec = {"name": "general", "variants": [{"name": "control", "model": "model-a"},
                                            {"name": "treatment", "model": "model-b"}], "start": True}
    return {**spec, **overrides}
