"""TrafficRouter: deterministic, sticky assignment of users to variants, and generation with the assigned variant."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from ab_testing.errors import ExperimentNotFoundError, ExperimentNotRunningError
from ab_testing.experiment_manager import ExperimentManager
from ab_testing.hashing import NOT_ENROLLED, assign
from ab_testing.store import ExperimentStore
from models.base_model import BaseModel, StreamResponse
from models.call_path import new_request_id
from models.errors import CallRefusedError
from models.messages import GenerationRequest, Message
from models.params import CallContext, GenerationParams, PromptParams, Source
from models.prompts.registry import PromptRegistry
from models.prompts.spec import PromptRef
from models.results import GenerationResult

if TYPE_CHECKING:
    from models.model_registry import ModelRegistry

log = logging.getLogger(__name__)

SOURCE: Source = "experiment"


class TrafficRouter:
    """Routes users to variants with GrowthBook hash v2; experiment assignments are stored, so they stick."""

    def __init__(self, model_registry: ModelRegistry | None = None,
                 experiments: ExperimentManager | None = None) -> None:
        if experiments is None:
            experiments = ExperimentManager(registry=model_registry)
        self.experiments = experiments
        self.model_registry = model_registry or experiments.registry
        self.prompts = PromptRegistry(experiments.engine)

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
        served = self.start(experiment_id, str(user_id), GenerationRequest.build(prompt),
                            CallContext(source=SOURCE, user_id=str(user_id), api_key_id=api_key_id))
        result = served.finish()
        return {"experiment_id": experiment_id, "variant": served.variant, "in_experiment": served.in_experiment,
                **_result_fields(result)}

    def start(self, experiment_id: int, user_id: str, request: GenerationRequest, context: CallContext,
              prompt_ref: PromptRef | None = None) -> ServedCall:
        """Start `request` on the user's variant: its model, and its system prompt and parameters over the
        request's own. Consume the stream (or read `finish()`); the exposure is recorded when it ends.

        The conversation is `prompt_ref` rendered, when given; a variant with its own prompt renders that version
        instead, with `prompt_ref`'s variables, so the variants of an experiment can be prompt versions.
        """
        experiment, variant_name = self._assign(experiment_id, user_id)
        served = variant_name or experiment["control"]
        variant = next(v for v in experiment["variants"] if v["name"] == served)
        model = self.model_registry.require_model(variant["model"])
        request_id = context.request_id or new_request_id()
        tagged = context.model_copy(update={"request_id": request_id}).with_tags(
            f"experiment:{experiment_id}", f"variant:{served}")
        prompt = _variant_prompt(variant, prompt_ref)
        if prompt is not None:
            request, tagged = self.prompts.apply(prompt, request, tagged)
        stream = model.run(_with_variant(request, PromptParams.model_validate(variant["params"])), tagged)
        return ServedCall(model.name, request_id, stream, self.experiments.store, experiment_id, variant_name, user_id)

    def find_running(self, name: str, owner: str | None = None) -> int:
        """The newest running experiment called `name` that `owner` may use (theirs, or one an admin made)."""
        for experiment in self.experiments.list_experiments():
            if experiment["name"] == name and experiment["status"] == "running" and (
                    owner is None or experiment["api_key_id"] in (None, owner)):
                return int(experiment["id"])
        raise ExperimentNotFoundError(f"No running experiment named {name!r}", details={"experiment": name})


@dataclass
class ServedCall:
    """A started call; when an experiment serves it, its exposure and metrics are recorded once, when it ends."""

    model: str
    request_id: str
    stream: StreamResponse
    store: ExperimentStore | None = None
    experiment_id: int = 0
    variant: str | None = None
    user_id: str | None = None
    recorded: bool = False

    @classmethod
    def plain(cls, model: str, request_id: str, stream: StreamResponse) -> ServedCall:
        """A call no experiment serves: nothing to record beyond the request log."""
        return cls(model, request_id, stream)

    @property
    def in_experiment(self) -> bool:
        return self.variant is not None

    def finish(self) -> GenerationResult:
        """Read the whole answer (if the caller has not) and record the exposure, success or failure."""
        try:
            result = self.stream.result
        except Exception as exc:
            self.record_failure(exc)
            raise
        metrics = {"latency": result.latency, "tokens": result.tokens, "cost": result.cost}
        self._record(result.status, {k: v for k, v in metrics.items() if v is not None})
        return result

    def record_failure(self, error: BaseException | None = None) -> None:
        """The call failed or was refused: recorded as the request log says it ended."""
        self._record("rejected" if isinstance(error, CallRefusedError) else "error", {})

    def _record(self, status: str, metrics: dict[str, float]) -> None:
        """Once per call; outside the coverage the user was served the control and is not exposed."""
        if self.store is not None and self.variant is not None and not self.recorded:
            self.recorded = True
            self.store.add_exposure(self.experiment_id, self.variant, self.user_id, self.request_id, status, metrics)


def _with_variant(request: GenerationRequest, variant: PromptParams) -> GenerationRequest:
    """The variant's system prompt replaces the request's system messages; its parameters win over the request's."""
    messages = request.messages
    if variant.system is not None:
        messages = (Message(role="system", content=variant.system), *(m for m in messages if m.role != "system"))
    params = GenerationParams.model_validate({**request.params.given(), **variant.only_generation().given()})
    return replace(request, messages=messages, params=params)


def _variant_prompt(variant: dict[str, Any], prompt_ref: PromptRef | None) -> PromptRef | None:
    """What the call renders on this variant: the variant's prompt with the call's variables, or the call's own."""
    if not variant.get("prompt_ref"):
        return prompt_ref
    return PromptRef(**variant["prompt_ref"], variables=prompt_ref.variables if prompt_ref is not None else {})


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
