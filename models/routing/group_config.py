"""Groups as the models file declares them (`groups:`), and their building once every model is registered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from models.cache.policy import CachePolicy
from models.routing.breakers import BreakerPolicy
from models.routing.deployment_limits import DeploymentLimits
from models.routing.group import BudgetPressure, ModelGroup
from models.routing.shared_stats import deployment_stats_for
from models.routing.strategies import Deployment, DeploymentStats, Orderer, Strategy

if TYPE_CHECKING:
    from models.model_registry import ModelRegistry


class DeploymentEntry(BaseModel):
    """A registered model serving a group: `weight` for `weighted`, `priority` (lower first) for `priority`,
    limits per clock minute (`rpm` calls, `tpm` tokens) beyond which it is skipped, and free-form `tags`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, max_length=200)
    weight: float = Field(default=1.0, gt=0, le=1_000_000)
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)
    tags: list[str] = Field(default_factory=list, max_length=50)


class BudgetAware(BaseModel):
    """Once the soft budget named `budget` has spent `threshold` of its limit, the cheapest deployments go first."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: str = Field(min_length=1, max_length=200)
    threshold: float = Field(default=0.8, gt=0, le=1)


class GroupEntry(BaseModel):
    """One declared group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    strategy: Strategy = "weighted"
    deployments: list[DeploymentEntry] = Field(min_length=1, max_length=1000)
    fallbacks: list[str] = Field(default_factory=list)  # models or groups, tried after every deployment failed
    circuit_breaker: BreakerPolicy | None = None  # for each deployment; the default policy otherwise
    budget_aware: BudgetAware | None = None
    cache: CachePolicy | None = None  # the response cache for the group, under the group's name


class GroupProblem(ValueError):
    """A group refers to something that does not exist, or to itself; names the group's index and field."""

    def __init__(self, index: int, field: str, message: str) -> None:
        super().__init__(message)
        self.index, self.field = index, field


def register_groups(registry: ModelRegistry, entries: list[GroupEntry]) -> None:
    """Build and register every group, each after the groups its fallbacks name; raises `GroupProblem`.
    The groups share what is seen of their deployments (calls in flight, latency): by this process, or with
    REDIS_URL by every instance."""
    stats = deployment_stats_for(registry.settings.redis_url)
    by_name = {entry.name: index for index, entry in enumerate(entries)}
    _check_names(registry, entries)
    built: set[str] = set()

    def build(index: int, path: tuple[str, ...]) -> None:
        entry = entries[index]
        if entry.name in built:
            return
        for position, fallback in enumerate(entry.fallbacks):
            if fallback in path or fallback == entry.name:
                raise GroupProblem(index, f"fallbacks.{position}",
                                   f"{fallback!r} leads back to group {entry.name!r}: fallbacks may not loop")
            if fallback in by_name:
                build(by_name[fallback], (*path, entry.name))
        registry.register_model(_group(registry, entry, stats))
        built.add(entry.name)

    for index in range(len(entries)):
        build(index, ())


def _check_names(registry: ModelRegistry, entries: list[GroupEntry]) -> None:
    groups = {entry.name for entry in entries}
    models = set(registry.list_models())

    def is_model(name: str) -> bool:
        return registry.get_model(name) is not None

    for index, entry in enumerate(entries):
        if entry.name in models:
            raise GroupProblem(index, "name", f"{entry.name!r} is already a model's name")
        for position, deployment in enumerate(entry.deployments):
            if not is_model(deployment.model):
                raise GroupProblem(index, f"deployments.{position}.model",
                                   f"{deployment.model!r} is not a registered model; registered: "
                                   f"{', '.join(sorted(models))}")
        for position, fallback in enumerate(entry.fallbacks):
            if fallback not in groups and not is_model(fallback):
                raise GroupProblem(index, f"fallbacks.{position}",
                                   f"{fallback!r} is neither a registered model nor a group of this file")


def _group(registry: ModelRegistry, entry: GroupEntry, stats: DeploymentStats) -> ModelGroup:
    deployments = [Deployment(registry.require_model(d.model), d.weight, d.priority, d.rpm, d.tpm, tuple(d.tags))
                   for d in entry.deployments]
    if entry.circuit_breaker is not None:
        for deployment in deployments:
            registry.call_path.breakers.set_policy(deployment.name, entry.circuit_breaker)
    group = ModelGroup(entry.name, Orderer(entry.strategy, deployments, stats), DeploymentLimits(registry.engine),
                       fallbacks=[registry.require_model(name) for name in entry.fallbacks],
                       breaker_policy=entry.circuit_breaker,
                       budget_pressure=(BudgetPressure(entry.budget_aware.budget, entry.budget_aware.threshold)
                                        if entry.budget_aware else None))
    group.cache_policy = entry.cache
    return group
