"""Shared set-up for the A/B tests: a registry with two fake models on the test database."""

from __future__ import annotations

from ab_testing.experiment_manager import ExperimentManager
from ab_testing.traffic_router import TrafficRouter
from models.model_registry import ModelRegistry
from storage.settings import Settings
from tests.fakes import FakeModel


def build(engine, settings: Settings) -> tuple[ExperimentManager, TrafficRouter, dict[str, FakeModel]]:
    """A manager and router over `engine`, with fake models "model-a" and "model-b" registered."""
    registry = ModelRegistry(engine, settings=settings, register_defaults=False)
    models = {name: FakeModel(name) for name in ("model-a", "model-b", "model-c")}
    for model in models.values():
        registry.register_model(model)
    manager = ExperimentManager(registry, engine)
    return manager, TrafficRouter(registry, manager), models


def outcomes(variant: str, n: int, successes: int, **extra) -> list[dict]:
    return [{"variant": variant, "success": i < successes, **extra} for i in range(n)]


def general(**overrides) -> dict:
    """A running two-variant general experiment; overrides replace top-level keys."""
    spec = {"name": "general", "variants": [{"name": "control", "model": "model-a"},
                                            {"name": "treatment", "model": "model-b"}], "start": True}
    return {**spec, **overrides}
