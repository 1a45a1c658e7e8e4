"""ExperimentManager: define experiments, move them through their lifecycle, record outcomes, read the stats."""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Engine

from ab_testing.analysis import analyze
from ab_testing.errors import (
    ExperimentNotFoundError,
    ExperimentNotRunningError,
    ExposureNotFoundError,
    InvalidExperimentError,
    InvalidTransitionError,
    UnknownVariantError,
)
from ab_testing.spec import ExperimentSpec, OutcomeSpec, legacy_spec
from ab_testing.store import ExperimentMissing, ExperimentStatusConflict, ExperimentStore
from storage.database import engine_for

if TYPE_CHECKING:
    from models.model_registry import ModelRegistry

log = logging.getLogger(__name__)

# action -> (target status, statuses it may start from)
TRANSITIONS: dict[str, tuple[str, frozenset[str]]] = {
    "start": ("running", frozenset({"draft", "paused"})),
    "pause": ("paused", frozenset({"running"})),
    "complete": ("completed", frozenset({"running", "paused"})),
}


class ExperimentManager:
    """Experiments on one database; `ExperimentManager()` uses the default registry and its database."""

    def __init__(self, db_path: Engine | str | None = None, *, registry: ModelRegistry | None = None) -> None:
        """On `db_path` (an Engine, a URL or, as originally, a SQLite path), else on the registry's database."""
        if registry is None and db_path is None:
            from models.model_registry import ModelRegistry

            registry = ModelRegistry()
        self._registry = registry
        self.engine = registry.engine if db_path is None and registry is not None else engine_for(db_path)
        self.store = ExperimentStore(self.engine)

    @property
    def registry(self) -> ModelRegistry:
        """The registry whose models the experiments call; built on this database when none was given."""
        if self._registry is None:
            from models.model_registry import ModelRegistry

            self._registry = ModelRegistry(self.engine)
        return self._registry

    def create_experiment(
        self, name: str | Mapping[str, Any] | ExperimentSpec, variant_a: str | None = None,
        variant_b: str | None = None, *, owner: str | None = None,
    ) -> int:
        """`create_experiment(name, model_a, model_b)` as originally (running, A = control), or a general spec.

        `owner` is the API key creating it: a managed key sees and changes only the experiments it owns.
        """
        if isinstance(name, str):
            if not variant_a or not variant_b:
                raise InvalidExperimentError("variant_a and variant_b (model names) are required",
                                             details={"fields": ["variant_a", "variant_b"]})
            spec = _validated(lambda: legacy_spec(name, variant_a, variant_b))
        elif isinstance(name, ExperimentSpec):
            spec = name
        else:
            spec = _validated(lambda: ExperimentSpec.model_validate(dict(name)))
        key = uuid.uuid4().hex
        experiment_id = self.store.create(
            {"key": key, "name": spec.name, "status": "running" if spec.start else "draft",
             "control": spec.control, "coverage": spec.coverage, "seed": spec.seed or key,
             "primary_metric": spec.primary_metric, "alpha": spec.alpha, "power": spec.power,
             "min_sample_size": spec.min_sample_size, "min_conversions": spec.min_conversions, "mde": spec.mde,
             "multiple_testing": spec.multiple_testing, "planned_sample_size": spec.planned_sample_size,
             "cuped_metrics": spec.cuped_metrics or None, "api_key_id": owner},
            [variant.model_dump() for variant in spec.variants],
        )
        log.info("Experiment created: %s (ID: %s)", spec.name, experiment_id)
        return experiment_id

    def get_experiment(self, experiment_id: int, owner: str | None = None) -> dict[str, Any]:
        """The experiment with its variants; raises ExperimentNotFoundError (also for another tenant's)."""
        experiment = self.store.get(experiment_id)
        if experiment is None or (owner is not None and experiment["api_key_id"] != owner):
            raise ExperimentNotFoundError.for_id(experiment_id)
        return experiment

    def check_owner(self, experiment_id: int, owner: str | None) -> None:
        """Refuse (as not found) an experiment that exists but belongs to another tenant; a missing one is left
        to the operation, so input errors are still reported first."""
        experiment = self.store.get(experiment_id)
        if experiment is not None and owner is not None and experiment["api_key_id"] != owner:
            raise ExperimentNotFoundError.for_id(experiment_id)

    def list_experiments(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Newest first (only `owner`'s when given); a two-variant experiment also names its models under the
        original's variant_a/b."""
        return [_with_original_variants(experiment) for experiment in self.store.list()
                if owner is None or experiment["api_key_id"] == owner]

    def transition(self, experiment_id: int, action: str) -> dict[str, Any]:
        """Apply a lifecycle action (start, pause, complete) atomically; returns the updated experiment."""
        target, allowed = TRANSITIONS[action]
        try:
            self.store.transition(experiment_id, target, allowed)
        except ExperimentMissing:
            raise ExperimentNotFoundError.for_id(experiment_id) from None
        except ExperimentStatusConflict as conflict:
            raise InvalidTransitionError(
                f"Cannot {action} an experiment that is {conflict.status}",
                details={"status": conflict.status, "action": action, "allowed_from": sorted(allowed)},
            ) from None
        return self.get_experiment(experiment_id)

    def start_experiment(self, experiment_id: int) -> dict[str, Any]:
        return self.transition(experiment_id, "start")

    def pause_experiment(self, experiment_id: int) -> dict[str, Any]:
        return self.transition(experiment_id, "pause")

    def complete_experiment(self, experiment_id: int) -> dict[str, Any]:
        return self.transition(experiment_id, "complete")

    def stop_experiment(self, experiment_id: int) -> dict[str, Any]:
        """The original name for completing an experiment; as originally, stopping a stopped one is harmless."""
        try:
            return self.complete_experiment(experiment_id)
        except InvalidTransitionError as exc:
            if exc.details.get("status") != "completed":
                raise
            return self.get_experiment(experiment_id)

    def set_weights(self, experiment_id: int, weights: Mapping[str, float]) -> dict[str, Any]:
        """Re-weight variants; users already assigned keep their variant, only new users see the new split."""
        experiment = self.get_experiment(experiment_id)
        self._check_variants(experiment, weights)
        if any(not isinstance(w, int | float) or isinstance(w, bool) or not math.isfinite(w) or w < 0
               for w in weights.values()):
            raise InvalidExperimentError("weights must be finite non-negative numbers", details={"field": "weights"})
        current = {v["name"]: v["weight"] for v in experiment["variants"]}
        if sum({**current, **weights}.values()) <= 0:
            raise InvalidExperimentError("at least one weight must be positive", details={"field": "weights"})
        try:
            self.store.set_weights(experiment_id, weights, closed={"completed"})
        except ExperimentStatusConflict as conflict:
            raise InvalidTransitionError("A completed experiment cannot be re-weighted",
                                         details={"status": conflict.status}) from None
        return self.get_experiment(experiment_id)

    def record_result(
        self, experiment_id: int, variant: str, success: bool, rating: float | None = None, *,
        metrics: Mapping[str, float] | None = None, outcome_id: str | None = None,
    ) -> int:
        """Record one outcome as originally, plus named numeric metrics; returns the result id."""
        outcome = {"variant": variant, "success": success, "rating": rating, "metrics": dict(metrics or {}),
                   "outcome_id": outcome_id}
        return self.record_results(experiment_id, [outcome])[0]["result_id"]

    def record_results(self, experiment_id: int, outcomes: Iterable[Mapping[str, Any] | OutcomeSpec]) -> list[
        dict[str, Any]
    ]:
        """Record a batch all-or-nothing while running; a repeated outcome_id is reported, not re-counted."""
        specs = [o if isinstance(o, OutcomeSpec) else _validated(lambda o=o: OutcomeSpec.model_validate(dict(o)))
                 for o in outcomes]
        experiment = self.get_experiment(experiment_id)
        self._check_variants(experiment, [spec.variant for spec in specs])
        _check_pre_period(experiment, specs)
        try:
            written = self.store.add_results(experiment_id, [spec.model_dump() for spec in specs],
                                             accept_status="running")
        except ExperimentStatusConflict as conflict:
            raise ExperimentNotRunningError(
                f"Experiment {experiment_id} is {conflict.status}; results are accepted only while it runs",
                details={"status": conflict.status},
            ) from None
        return [{"result_id": result_id, "duplicate": duplicate} for result_id, duplicate in written]

    def record_feedback(self, request_id: str, success: bool, rating: float | None = None,
                        owner: str | None = None) -> dict[str, Any]:
        """The outcome of one served call, counted against the variant that answered it; sending the same
        call's feedback again changes nothing (its outcome id is the call's request id)."""
        exposure = self.store.exposure(request_id)
        if exposure is None:
            raise ExposureNotFoundError(request_id)
        self.check_owner(exposure["experiment_id"], owner)
        outcome = OutcomeSpec(variant=exposure["variant"], success=success, rating=rating,
                              outcome_id=f"feedback:{request_id}")
        [written] = self.record_results(exposure["experiment_id"], [outcome])
        return {"experiment_id": exposure["experiment_id"], "variant": exposure["variant"], **written}

    def get_experiment_stats(self, experiment_id: int) -> dict[str, Any] | None:
        """Summaries, comparisons, health and decision; None for an unknown experiment, as originally."""
        experiment = self.store.get(experiment_id)
        if experiment is None:
            return None
        return analyze(experiment, self.store.aggregates(experiment_id))

    @staticmethod
    def _check_variants(experiment: Mapping[str, Any], names: Iterable[str]) -> None:
        known = [v["name"] for v in experiment["variants"]]
        for name in names:
            if name not in known:
                raise UnknownVariantError(
                    f"Experiment {experiment['id']} has no variant {name!r}. Variants: {', '.join(known)}",
                    details={"variant": name, "variants": known},
                )


def _check_pre_period(experiment: Mapping[str, Any], outcomes: Iterable[OutcomeSpec]) -> None:
    """CUPED pairs each unit's metric with its pre-period value: a declared metric needs one in every outcome that
    reports it, and an undeclared one takes none (it would silently be ignored)."""
    declared = set(experiment.get("cuped_metrics") or ())
    for index, outcome in enumerate(outcomes):
        missing = sorted((declared & outcome.metrics.keys()) - outcome.pre_period.keys())
        undeclared = sorted(outcome.pre_period.keys() - declared)
        if missing or undeclared:
            reason = (f"pre_period needs {', '.join(missing)} (declared in the experiment's cuped_metrics)" if missing
                      else f"pre_period has {', '.join(undeclared)}, not in the experiment's cuped_metrics")
            field = f"outcomes.{index}.pre_period"
            raise InvalidExperimentError(f"Invalid result: {field}: {reason}",
                                         details={"fields": [{"field": field, "reason": reason}]})


def _with_original_variants(experiment: dict[str, Any]) -> dict[str, Any]:
    """The original listed A's and B's models; here A is the control of a two-variant experiment."""
    if len(experiment["variants"]) != 2:
        return experiment
    a, b = sorted(experiment["variants"], key=lambda variant: variant["name"] != experiment["control"])
    return {**experiment, "variant_a": a["model"], "variant_b": b["model"]}


def _validated(build: Any) -> Any:
    """Run a pydantic constructor, turning its error into InvalidExperimentError naming each field."""
    try:
        return build()
    except ValidationError as exc:
        fields = [{"field": ".".join(str(p) for p in err["loc"]) or "(body)", "reason": err["msg"]}
                  for err in exc.errors()]
        summary = "; ".join(f"{f['field']}: {f['reason']}" for f in fields)
        raise InvalidExperimentError(f"Invalid experiment: {summary}", details={"fields": fields}) from None
