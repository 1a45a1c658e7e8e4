"""A/B experiment endpoints: create, list, lifecycle, test traffic, record outcomes, statistics."""

from __future__ import annotations

from typing import Annotated

from flask import Blueprint, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from ab_testing.spec import ExperimentSpec, OutcomeSpec
from api.errors import ApiError
from api.validation import parse_body
from api.wiring import services

bp = Blueprint("experiments", __name__, url_prefix="/api")


class LegacyExperimentBody(BaseModel):
    """The original body: two model names, A being the control."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    variant_a: str = Field(min_length=1, max_length=200)
    variant_b: str = Field(min_length=1, max_length=200)


class TrafficTestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(min_length=1, max_length=200)
    prompt: str = Field(min_length=1)


class OutcomeBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcomes: list[OutcomeSpec] = Field(min_length=1, max_length=1000)


class WeightsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weights: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] = Field(min_length=1)


def _payload_has(key: str) -> bool:
    payload = request.get_json(silent=True)
    return isinstance(payload, dict) and key in payload


@bp.post("/experiment")
def create_experiment():  # noqa: ANN201
    manager = services().experiments
    if _payload_has("variants"):
        experiment_id = manager.create_experiment(parse_body(ExperimentSpec))
    else:
        body = parse_body(LegacyExperimentBody)
        experiment_id = manager.create_experiment(body.name, body.variant_a, body.variant_b)
    return jsonify({"status": "success", "experiment_id": experiment_id}), 201


@bp.get("/experiments")
def list_experiments():  # noqa: ANN201
    experiments = services().experiments.list_experiments()
    return jsonify({"status": "success", "experiments": experiments, "count": len(experiments)})


@bp.get("/experiment/<int:experiment_id>")
def get_experiment(experiment_id: int):  # noqa: ANN201
    return jsonify({"status": "success", "experiment": services().experiments.get_experiment(experiment_id)})


@bp.post("/experiment/<int:experiment_id>/<any(start, pause, complete):action>")
def change_status(experiment_id: int, action: str):  # noqa: ANN201
    experiment = services().experiments.transition(experiment_id, action)
    return jsonify({"status": "success", "experiment": experiment})


@bp.put("/experiment/<int:experiment_id>/weights")
def set_weights(experiment_id: int):  # noqa: ANN201
    body = parse_body(WeightsBody)
    experiment = services().experiments.set_weights(experiment_id, body.weights)
    return jsonify({"status": "success", "experiment": experiment})


@bp.post("/experiment/<int:experiment_id>/test")
def test_experiment(experiment_id: int):  # noqa: ANN201
    body = parse_body(TrafficTestBody)
    result = services().traffic_router.run_experiment(experiment_id, body.user_id, body.prompt)
    return jsonify({"status": "success", **result})


@bp.post("/experiment/<int:experiment_id>/record")
def record_result(experiment_id: int):  # noqa: ANN201
    manager = services().experiments
    if _payload_has("outcomes"):
        written = manager.record_results(experiment_id, parse_body(OutcomeBatch).outcomes)
        return jsonify({"status": "success", "results": written, "count": len(written),
                        "recorded": sum(not w["duplicate"] for w in written)})
    written = manager.record_results(experiment_id, [parse_body(OutcomeSpec)])
    return jsonify({"status": "success", **written[0]})


@bp.get("/experiment/<int:experiment_id>/stats")
def experiment_stats(experiment_id: int):  # noqa: ANN201
    stats = services().experiments.get_experiment_stats(experiment_id)
    if stats is None:
        raise ApiError(404, "experiment_not_found", f"Experiment {experiment_id} not found",
                       experiment_id=experiment_id)
    return jsonify({"status": "success", "stats": stats})
