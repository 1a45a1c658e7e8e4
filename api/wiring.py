"""The composition root: builds the registry, repositories and services once, in one place."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy import Engine

from ab_testing.experiment_manager import ExperimentManager
from ab_testing.traffic_router import TrafficRouter
from api.key_store import ApiKeyStore
from comparison.benchmark import BenchmarkRunner
from comparison.comparison_store import ComparisonStore
from comparison.model_comparator import ModelComparator
from core.settings import Settings
from models.model_registry import ModelRegistry
from models.request_log import RequestLogRepository
from monitoring.budget_guard import BudgetGuard
from monitoring.budgets import BudgetService
from monitoring.cost_tracker import CostTracker
from monitoring.metrics_tracker import MetricsTracker
from monitoring.webhooks import WebhookNotifier
from storage.database import get_engine
from workflows.workflow_engine import WorkflowEngine

EXTENSION_KEY = "ai_model_manager"


@dataclass
class Services:
    """Everything the blueprints call into; built by `build_services`."""

    settings: Settings
    engine: Engine
    registry: ModelRegistry
    request_log: RequestLogRepository
    comparison_store: ComparisonStore
    comparator: ModelComparator
    benchmarks: BenchmarkRunner
    experiments: ExperimentManager
    traffic_router: TrafficRouter
    metrics: MetricsTracker
    costs: CostTracker
    budgets: BudgetService
    workflows: WorkflowEngine
    api_keys: ApiKeyStore


def build_services(settings: Settings, *, register_default_models: bool = True) -> Services:
    """Wire the whole product for one database. `main.py` and `create_app` both use this."""
    engine = get_engine(settings.database_url)
    registry = ModelRegistry(engine, settings=settings, register_defaults=register_default_models)
    comparison_store = ComparisonStore(engine)
    experiments = ExperimentManager(registry, engine)
    budgets = BudgetService(engine)
    registry.add_hook(BudgetGuard(budgets, WebhookNotifier(on_result=budgets.store.set_webhook_status)))
    return Services(
        settings=settings,
        engine=engine,
        registry=registry,
        request_log=RequestLogRepository(engine),
        comparison_store=comparison_store,
        comparator=ModelComparator(registry, comparison_store),
        benchmarks=BenchmarkRunner(registry, comparison_store),
        experiments=experiments,
        traffic_router=TrafficRouter(registry, experiments),
        metrics=MetricsTracker(engine),
        costs=CostTracker(engine),
        budgets=budgets,
        workflows=WorkflowEngine(registry, engine),
        api_keys=ApiKeyStore(engine),
    )


def services(app: Flask | None = None) -> Services:
    """The services of `app`, by default the app handling the current request."""
    return (app or current_app).extensions[EXTENSION_KEY]
