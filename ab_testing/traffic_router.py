"""TrafficRouter: deterministic, sticky assignment of users to variants, and generation with the assigned variant."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ab_testing.errors import ExperimentNotFoundError, ExperimentNotRunningError
from ab_testing.experiment_manager import ExperimentManager
from ab_testing.hashing import NOT_ENROLLED, assign
from models.base_model import BaseModel
from models.call_path import new_request_id
from models.errors import CallRefusedError

if TYPE_CHECKING:
    from models.model_registry import ModelRegistry
    from models.results import GenerationResult

log = logging.getLogger(__name__)

SOURCE = "experiment"


class TrafficRouter:
    """Routes users to variants with GrowthBook hash v2; experiment assignments are stored, so they stick."""

    def __init__(self, model_registry: ModelRegistry | None = None,
                 experiments: ExperimentManager | None = None) -> None:
        if experiments is None:
            experiments = ExperimentManager(registry=model_registry)
        self.experiments = experiments
        self.model_registry = model_registry or experiments.registry

    def route_request(self, user_id: str, variant_a_model: str, variant_b_model: str,
                      split: float = 50) -> tuple[str, BaseModel | None]:
        """As originally: ('A' or 'B', model), `split` percent to A; deterministic per user and model pair.

        The model is None when no model of that name is registered, as originally.
        """
        variant, name = _route(user_id, variant_a_model, variant_b_model, split)
        return variant, self.model_registry.get_model(name)

    def generate_with_routing(self, user_id: str, prompt: str, variant_a_model: str, variant_b_model: str,
                              split: float = 50) -> dict[str, Any]:
        """As originally: route, generate with the chosen model, return the variant with the result's figures.

        Raises UnknownModelError (a ValueError, as originally) when the chosen variant's model is not registered.
        """
        variant, name = _route(user_id, variant_a_model, variant_b_model, split)
        result = self.model_registry.require_model(name).generate(prompt, user_id=str(user_id), source=SOURCE)
        return {"variant": variant, **_result_fields(result)}

    def assign_variant(self, experiment_id: int, user_id: str) -> str | None:
        """The user's variant in a running experiment (stored on first sight), or None when not enrolled."""
        return self._assign(experiment_id, str(user_id))[1]

    def _assign(self, experiment_id: int, user_id: str) -> tuple[dict[str, Any], str | None]:
        store = self.experiments.store
        experiment, stored = store.routing_state(experiment_id, user_id)
        if experiment is None:
            raise ExperimentNotFoundError.for_id(experiment_id)
        if experiment["status"] != "running":
            raise ExperimentNotRunningError(
                f"Experiment {experiment_id} is {experiment['status']}; it serves traffic only while running",
                details={"status": experiment["status"]},
            )
        if stored is not None:
            return experiment, stored
        variants = experiment["variants"]
        index = assign(experiment["seed"], user_id, [v["weight"] for v in variants], experiment["coverage"])
        if index == NOT_ENROLLED:
            return experiment, None
        return experiment, store.assign(experiment_id, user_id, variants[index]["name"])

    def run_experiment(self, experiment_id: int, user_id: str, prompt: str, *,
                       api_key_id: str | None = None) -> dict[str, Any]:
        """Generate with the user's variant (model + params) through the managed path and record the exposure.

        Users outside the experiment's coverage get the control's model and are not recorded as exposed.
        `api_key_id` is the key the call is made with: its limits and budgets apply, and the log records it.
        """
        user_id = str(user_id)
        experiment, variant_name = self._assign(experiment_id, user_id)
        served = variant_name or experiment["control"]
        variant = next(v for v in experiment["variants"] if v["name"] == served)
        model = self.model_registry.require_model(variant["model"])
        request_id = new_request_id()
        try:
            result = model.generate(
                prompt, user_id=user_id, source=SOURCE, request_id=request_id, api_key_id=api_key_id,
                tags=[f"experiment:{experiment_id}", f"variant:{served}"], **variant["params"],
            )
        except Exception as exc:
            if variant_name is not None:
                status = "rejected" if isinstance(exc, CallRefusedError) else "error"  # as the request log says
                self.experiments.store.add_exposure(experiment_id, variant_name, user_id, request_id, status, {})
            raise
        if variant_name is not None:
            metrics = {"latency": result.latency, "tokens": result.tokens, "cost": result.cost}
            self.experiments.store.add_exposure(experiment_id, variant_name, user_id, result.request_id,
                                                result.status, {k: v for k, v in metrics.items() if v is not None})
        return {"experiment_id": experiment_id, "variant": variant_name, "in_experiment": variant_name is not None,
                **_result_fields(result)}


def _route(user_id: str, variant_a_model: str, variant_b_model: str, split: float) -> tuple[str, str]:
    """The user's variant and its model name: `split` percent to A, deterministic per user and model pair."""
    if not 0 <= split <= 100:
        raise ValueError("split must be a percentage between 0 and 100")
    index = assign(f"{variant_a_model}|{variant_b_model}", str(user_id), [split, 100 - split])
    variant, name = ("A", variant_a_model) if index == 0 else ("B", variant_b_model)
    log.debug("User %s routed to variant %s", user_id, variant)
    return variant, name


def _result_fields(result: GenerationResult) -> dict[str, Any]:
    """The original keys (model, response, tokens, latency, cost) plus the request id that links the call."""
    return {"model": result.model, "response": result.response, "tokens": result.tokens,
            "latency": result.latency, "cost": result.cost, "request_id": result.request_id}
