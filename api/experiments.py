"""A/B experiment endpoints: create, list, lifecycle, test traffic, record outcomes, statistics."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, RootModel, model_validator

from ab_testing.spec import ExperimentSpec, OutcomeSpec
from api.chat_schema import call_id
from api.errors import ApiError
from api.openapi import ApiBlueprint, RowId, json_object
from api.services import services
from api.tenancy import caller_key, path_row_id, tenant
from models.params import UserId

bp = ApiBlueprint("experiments", __name__, url_prefix="/api")


class LegacyExperimentBody(BaseModel):
    """The original body: two model names, A being the control."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    variant_a: str = Field(min_length=1, max_length=200)
    variant_b: str = Field(min_length=1, max_length=200)


class TrafficTestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    prompt: str = Field(min_length=1)


class OutcomeBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeSpec] = Field(min_length=1, max_length=1000)


class WeightsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(min_length=1)


def _validated_by_key(key: str, with_key: type[BaseModel], without_key: type[BaseModel]) -> Any:
    """A wrap validator: objects holding `key` validate as `with_key`, others as `without_key`.

    Unlike a plain union, errors name the fields of the one schema that applies, without a prefix.
    """

    def dispatch(cls: type[RootModel], value: Any, handler: Any) -> Any:
        if not isinstance(value, dict):
            return handler(value)
        return cls((with_key if key in value else without_key).model_validate(value))

    return model_validator(mode="wrap")(dispatch)


class CreateExperimentBody(RootModel[ExperimentSpec | LegacyExperimentBody]):
    """A full spec (with `variants`), or the original `name`, `variant_a`, `variant_b` body."""

    by_key = _validated_by_key("variants", ExperimentSpec, LegacyExperimentBody)


class RecordBody(RootModel[OutcomeBatch | OutcomeSpec]):
    """A batch (`outcomes`), or a single outcome."""

    by_key = _validated_by_key("outcomes", OutcomeBatch, OutcomeSpec)


class ExperimentPath(BaseModel):
    experiment_id: RowId


class TransitionPath(ExperimentPath):
    action: Literal["start", "pause", "complete"]


EXPERIMENT = json_object("The experiment with its variants, weights and status")


@bp.before_request
def _only_own_experiments() -> None:
    """Every `/experiment/<id>/...` route: another tenant's experiment is as absent as a missing one."""
    experiment_id = path_row_id("experiment_id")
    if experiment_id is not None:
        services().experiments.check_owner(experiment_id, tenant())


@bp.post("/experiment", responses={201: json_object("The new experiment's id")})
def create_experiment(body: CreateExperimentBody) -> tuple[Response, int]:
    """Create an experiment in draft (a spec) or running (the original two-model body)."""
    manager = services().experiments
    spec = body.root
    if isinstance(spec, ExperimentSpec):
        experiment_id = manager.create_experiment(spec, owner=caller_key())
    else:
        experiment_id = manager.create_experiment(spec.name, spec.variant_a, spec.variant_b, owner=caller_key())
    return jsonify({"status": "success", "experiment_id": experiment_id}), 201


@bp.get("/experiments", responses={200: json_object("Every experiment")})
def list_experiments() -> Response:
    """All experiments."""
    experiments = services().experiments.list_experiments(owner=tenant())
    return jsonify({"status": "success", "experiments": experiments, "count": len(experiments)})


@bp.get("/experiment/<int:experiment_id>", responses={200: EXPERIMENT})
def get_experiment(path: ExperimentPath) -> Response:
    """One experiment."""
    return jsonify({"status": "success", "experiment": services().experiments.get_experiment(path.experiment_id)})


@bp.post("/experiment/<int:experiment_id>/<any(start, pause, complete):action>", responses={200: EXPERIMENT})
def change_status(path: TransitionPath) -> Response:
    """Start, pause or complete an experiment."""
    experiment = services().experiments.transition(path.experiment_id, path.action)
    return jsonify({"status": "success", "experiment": experiment})


@bp.put("/experiment/<int:experiment_id>/weights", responses={200: EXPERIMENT})
def set_weights(path: ExperimentPath, body: WeightsBody) -> Response:
    """Change the traffic weights of a running experiment's variants."""
    experiment = services().experiments.set_weights(path.experiment_id, body.weights)
    return jsonify({"status": "success", "experiment": experiment})


@bp.post("/experiment/<int:experiment_id>/test", responses={200: json_object("The variant served and its result")})
def test_experiment(path: ExperimentPath, body: TrafficTestBody) -> Response:
    """Route one prompt for `user_id` through the experiment and generate with the chosen variant."""
    result = services().traffic_router.run_experiment(path.experiment_id, body.user_id, body.prompt,
                                                      api_key_id=caller_key())
    return jsonify({"status": "success", **result})


@bp.post("/experiment/<int:experiment_id>/record", responses={200: json_object("The recorded outcome(s)")})
def record_result(path: ExperimentPath, body: RecordBody) -> Response:
    """Record one outcome, or a batch under `outcomes`; repeated idempotency keys are not counted twice."""
    manager, outcome = services().experiments, body.root
    if isinstance(outcome, OutcomeBatch):
        written = manager.record_results(path.experiment_id, outcome.outcomes)
        return jsonify({"status": "success", "results": written, "count": len(written),
                        "recorded": sum(not w["duplicate"] for w in written)})
    written = manager.record_results(path.experiment_id, [outcome])
    return jsonify({"status": "success", **written[0]})


@bp.get("/experiment/<int:experiment_id>/stats", responses={200: json_object("Per-variant statistics and tests")})
def experiment_stats(path: ExperimentPath) -> Response:
    """The experiment's statistics: per-variant metrics, significance tests and the recommendation."""
    experiment_id = path.experiment_id
    stats = services().experiments.get_experiment_stats(experiment_id)
    if stats is None:
        raise ApiError(404, "experiment_not_found", f"Experiment {experiment_id} not found",
                       experiment_id=experiment_id)
    return jsonify({"status": "success", "stats": stats})


class FeedbackBody(BaseModel):
    """The outcome of a call an experiment served: its `request_id` (or the gateway response's `id`)."""

    model_config = ConfigDict(extra="forbid")

    request_id: str = Field(min_length=1, max_length=100)
    success: bool
    rating: float | None = Field(default=None, allow_inf_nan=False)


@bp.post("/feedback", responses={200: json_object("The outcome, recorded against the call's variant")})
def feedback(body: FeedbackBody) -> Response:
    """Record whether a served call succeeded (and its rating) once, against the variant that answered it."""
    recorded = services().experiments.record_feedback(call_id(body.request_id), body.success, body.rating,
                                                      owner=tenant())
    return jsonify({"status": "success", **recorded})
