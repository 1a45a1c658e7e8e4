"""Every service the API and `main.py` call into, built over one runtime."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from sqlalchemy import Engine

from ab_testing.experiment_manager import ExperimentManager
from ab_testing.rollouts import RollbackHook, RolloutManager
from ab_testing.traffic_router import TrafficRouter
from comparison.benchmark import BenchmarkRunner
from comparison.comparison_store import ComparisonStore
from comparison.model_comparator import ModelComparator
from core.settings import Settings
from models.model_registry import ModelRegistry
from models.prompts.registry import PromptRegistry
from models.request_log import RequestLogRepository
from models.routing.probes import HealthProbes
from monitoring.anomaly_alerts import AnomalyAlerts
from monitoring.budgets import BudgetService
from monitoring.cost_tracker import CostTracker
from monitoring.metrics_tracker import MetricsTracker
from monitoring.model_health import ModelHealthService
from monitoring.telemetry import GenAICallTelemetry, Telemetry, telemetry_for
from monitoring.webhook_policy import WebhookPolicy
from monitoring.webhooks import WebhookNotifier
from storage.run_sweeper import RunSweeper
from wiring.jobs import Jobs, build_jobs, register_domain_jobs
from wiring.runtime import runtime_for
from workflows.workflow_engine import WorkflowEngine


@dataclass
class Services:
    """The registry and the domain services of one database; built by `build_services`."""

    settings: Settings
    engine: Engine
    registry: ModelRegistry
    request_log: RequestLogRepository
    prompts: PromptRegistry
    comparison_store: ComparisonStore
    comparator: ModelComparator
    benchmarks: BenchmarkRunner
    experiments: ExperimentManager
    traffic_router: TrafficRouter
    metrics: MetricsTracker
    costs: CostTracker
    budgets: BudgetService
    health: ModelHealthService
    workflows: WorkflowEngine
    sweeper: RunSweeper  # reclaims the runs of dead processes; started by the first request each process serves
    anomalies: AnomalyAlerts
    anomaly_watch: RunSweeper  # checks for model anomalies every ANOMALY_CHECK_SECONDS
    rollouts: RolloutManager
    rollout_watch: RunSweeper  # submits a rollout step job (advancing running rollouts) on the anomaly watch's interval
    probe_watch: RunSweeper | None  # probes group deployments every HEALTH_PROBE_SECONDS, when set
    jobs: Jobs  # background jobs and batches
    telemetry: Telemetry | None  # OpenTelemetry spans and metrics, when OTEL_EXPORTER_OTLP_ENDPOINT is set

    def stop_background(self) -> None:
        """Stop this app's background threads (chores and the in-process job pool): for an app being disposed of
        in a process that goes on, such as a test."""
        for chore in self.periodic_chores():
            chore.stop()
        self.jobs.queue.stop()

    def periodic_chores(self) -> list[RunSweeper]:
        """What each serving process runs in the background, started by its first request."""
        chores = (self.sweeper, self.anomaly_watch, self.rollout_watch, self.probe_watch, self.jobs.watch)
        return [chore for chore in chores if chore is not None]


def build_services(settings: Settings, telemetry: Telemetry | None = None) -> Services:
    """Wire the whole product for `settings`: the registry on the runtime's call path, then the services.

    `telemetry` replaces what the settings would build (tests give in-memory exporters); without either, no
    telemetry hook is attached and calls pay nothing for it."""
    runtime = runtime_for(settings)
    engine = runtime.engine
    telemetry = telemetry or telemetry_for(settings)
    registry = ModelRegistry(engine, settings=settings, hooks=[GenAICallTelemetry(telemetry)] if telemetry else ())
    comparison_store = ComparisonStore(engine)
    experiments = ExperimentManager(engine, registry=registry)
    benchmarks = BenchmarkRunner(registry, comparison_store)
    jobs = build_jobs(settings, engine)
    workflows = WorkflowEngine(registry, engine)
    health = ModelHealthService(engine, runtime.breakers)
    anomalies = AnomalyAlerts(engine, health, registry.deployment_names, webhook_url=settings.alert_webhook_url)
    anomalies.notifier = WebhookNotifier(WebhookPolicy(allow_private=settings.webhook_allow_private),
                                         on_result=anomalies.set_webhook_status)
    probes = HealthProbes(registry)
    prompts = PromptRegistry(engine)
    rollouts = RolloutManager(engine, registry, prompts, on_rollback=_rollback_webhook(anomalies))
    prompts.router = rollouts.route_prompt  # every call rendering a prompt by its label may be in a prompt rollout
    traffic_router = TrafficRouter(registry, experiments)
    traffic_router.prompts = workflows.runner.prompts = prompts
    register_domain_jobs(jobs, engine, benchmarks, rollouts, workflows)
    return Services(
        jobs=jobs,
        settings=settings,
        engine=engine,
        registry=registry,
        request_log=runtime.request_log,
        prompts=prompts,
        comparison_store=comparison_store,
        comparator=ModelComparator(registry, store=comparison_store),
        benchmarks=benchmarks,
        experiments=experiments,
        traffic_router=traffic_router,
        metrics=MetricsTracker(engine),
        costs=CostTracker(engine),
        budgets=runtime.budgets,
        health=health,
        workflows=workflows,
        sweeper=RunSweeper((workflows.reclaim_interrupted, benchmarks.reclaim_interrupted),
                           interval=settings.run_heartbeat_seconds),
        anomalies=anomalies,
        anomaly_watch=RunSweeper((anomalies.check,), interval=settings.anomaly_check_seconds),
        rollouts=rollouts,
        rollout_watch=RunSweeper((partial(_submit_rollout_step, jobs, rollouts),),
                                 interval=settings.anomaly_check_seconds),
        probe_watch=(RunSweeper((probes.probe,), interval=settings.health_probe_seconds)
                     if settings.health_probe_seconds else None),
        telemetry=telemetry,
    )


def _submit_rollout_step(jobs: Jobs, rollouts: RolloutManager) -> None:
    """A job advancing the running rollouts, while any runs and none is pending (no job rows while idle)."""
    if rollouts.has_running():
        jobs.runner.submit_unless_pending("rollout_step")


def _rollback_webhook(anomalies: AnomalyAlerts) -> RollbackHook | None:
    """A rollback is alerted like an anomaly: POSTed to ALERT_WEBHOOK_URL, when one is set."""
    notifier, url = anomalies.notifier, anomalies.webhook_url
    if notifier is None or url is None:
        return None
    return lambda payload: notifier.send(url, payload)
