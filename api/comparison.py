"""Comparison endpoints: compare models on a prompt, the history and leaderboard, and benchmark runs.

`POST /api/benchmarks` answers 202 at once and runs the benchmark on a background thread; poll
`GET /api/benchmarks/<id>` for `progress` and, when `status` is `completed`, the `report`. A run's `status` is
`pending`, `running`, `completed`, `failed` or `interrupted` (the process executing it stopped);
`POST /api/benchmarks/<id>/resume` finishes a failed or interrupted run without asking again what it has.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from flask import Response, g, jsonify, url_for
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.errors import ApiError
from api.openapi import ApiBlueprint, RowId, json_object, text_body
from api.services import services
from api.tenancy import caller_key, path_row_id, tenant
from comparison.dataset import BUILTIN_NAME, load_dataset, parse_dataset
from comparison.model_comparator import MAX_REPETITIONS
from comparison.reports import DEFAULT_QUALITY_BAR, render_markdown
from models.params import MAX_TAGS, MaxTokens, PromptParams, Tag, Temperature, UserId

bp = ApiBlueprint("comparison", __name__, url_prefix="/api")


class CompareRequest(PromptParams):
    """`system` and the generation parameters may be given at the top level or inside `params`."""

    models: list[str] = Field(min_length=1, max_length=10)
    prompt: str = Field(min_length=1)
    params: PromptParams | None = None
    scorers: list[dict[str, Any]] | None = Field(default=None, max_length=10)
    reference: str | None = None
    weights: dict[Literal["quality", "latency", "cost"], float] | None = None
    repetitions: int = Field(default=1, ge=1, le=MAX_REPETITIONS)
    user_id: UserId | None = None
    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)

    @model_validator(mode="after")
    def _one_place_per_param(self) -> CompareRequest:
        if self.params is not None:
            for name in PromptParams.model_fields:
                if getattr(self, name) is not None and getattr(self.params, name) is not None:
                    raise ValueError(f"'{name}' is given both at the top level and in 'params'")
        return self

    def generation(self) -> dict[str, Any]:
        """The system prompt and generation parameters, from wherever they were given."""
        values = {name: getattr(self, name) for name in PromptParams.model_fields if getattr(self, name) is not None}
        if self.params is not None:
            values.update({name: getattr(self.params, name) for name in self.params.model_fields_set})
        return values


class ListQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500)
    model: str | None = None


class BenchmarkRequest(BaseModel):
    """Run the built-in dataset, or inline `items` (JSONL objects); `tasks`/`limit` pick a subset."""

    model_config = ConfigDict(extra="forbid")

    models: list[str] = Field(min_length=1, max_length=10)
    dataset: Literal["builtin"] = BUILTIN_NAME
    items: list[dict[str, Any]] | None = Field(default=None, min_length=1, max_length=1000)
    tasks: list[str] | None = None
    limit: int | None = Field(default=None, ge=1, le=1000)
    temperature: Temperature | None = 0.0
    max_tokens: MaxTokens | None = None
    quality_bar: float = Field(default=DEFAULT_QUALITY_BAR, ge=0, le=1)


class ComparisonPath(BaseModel):
    comparison_id: RowId


class BenchmarkPath(BaseModel):
    run_id: RowId


BENCHMARK_RUN = json_object("A benchmark run: status (pending, running, completed, failed or interrupted: the "
                            "process executing it stopped; both resume), progress, params and, once completed, "
                            "the report")


@bp.post("/compare", responses={200: json_object("Each model's results, the scores and the winner")})
def compare(body: CompareRequest) -> Response:
    """Run one prompt on several models side by side, score the answers and pick a winner."""
    comparison = services().comparator.compare_models(
        body.models, body.prompt, scorers=body.scorers, reference=body.reference, weights=_weights(body.weights),
        repetitions=body.repetitions, user_id=body.user_id, tags=body.tags, api_key_id=g.get("api_key_id"),
        **body.generation(),
    )
    return jsonify({"status": "success", "comparison": comparison})


@bp.get("/comparisons", responses={200: json_object("The newest comparisons")})
def list_comparisons(query: ListQuery) -> Response:
    """Past comparisons, newest first, optionally those that included `model`."""
    rows = services().comparison_store.list_comparisons(query.limit, model=query.model)
    return jsonify({"comparisons": rows, "count": len(rows)})


@bp.get("/comparisons/leaderboard", responses={200: json_object("Win rates and Elo ratings per model")})
def leaderboard() -> Response:
    """Models ranked by Elo rating over all comparisons."""
    return jsonify({"leaderboard": services().comparison_store.leaderboard(), "rating": "elo"})


@bp.get("/comparisons/<int:comparison_id>", responses={200: json_object("One comparison with its results")})
def get_comparison(path: ComparisonPath) -> Response:
    """One stored comparison."""
    return jsonify(services().comparison_store.get_comparison(path.comparison_id))


@bp.before_request
def _only_own_benchmarks() -> None:
    """Every `/benchmarks/<id>/...` route: another tenant's run is as absent as a missing one."""
    run_id = path_row_id("run_id")
    if run_id is not None:
        services().comparison_store.get_benchmark(run_id, owner=tenant())


@bp.post("/benchmarks", responses={202: BENCHMARK_RUN})
def start_benchmark(body: BenchmarkRequest) -> Response:
    """Start a benchmark run in the background; poll the `Location` for progress and the report."""
    if body.items is not None:
        dataset = parse_dataset([json.dumps(item) for item in body.items], "inline")
    else:
        dataset = load_dataset()
    run_id = services().benchmarks.start(
        body.models, dataset.select(tasks=body.tasks, limit=body.limit), temperature=body.temperature,
        max_tokens=body.max_tokens, quality_bar=body.quality_bar, owner=caller_key(),
    )
    return _accepted(run_id)


@bp.post("/benchmarks/<int:run_id>/resume", responses={202: BENCHMARK_RUN})
def resume_benchmark(path: BenchmarkPath) -> Response:
    """Finish a failed or interrupted benchmark run in the background, asking only for the answers it lacks."""
    services().benchmarks.start_resume(path.run_id)
    return _accepted(path.run_id)


@bp.get("/benchmarks", responses={200: json_object("The newest benchmark runs")})
def list_benchmarks(query: ListQuery) -> Response:
    """Benchmark runs, newest first."""
    rows = [_public_run(run) for run in services().comparison_store.list_benchmarks(query.limit, owner=tenant())]
    return jsonify({"benchmarks": rows, "count": len(rows)})


@bp.get("/benchmarks/<int:run_id>", responses={200: BENCHMARK_RUN})
def get_benchmark(path: BenchmarkPath) -> Response:
    """A benchmark run's status and progress, and its report once completed."""
    return jsonify(_public_run(services().comparison_store.get_benchmark(path.run_id)))


@bp.get("/benchmarks/<int:run_id>/report.md",
        responses={200: text_body("text/markdown", "The benchmark report as Markdown")})
def benchmark_report(path: BenchmarkPath) -> Response:
    """A completed benchmark's report as Markdown; 409 while it still runs."""
    run_id = path.run_id
    run = services().comparison_store.get_benchmark(run_id)
    if run["status"] != "completed":
        raise ApiError(409, "benchmark_not_finished", f"Benchmark run {run_id} is {run['status']}",
                       status=run["status"], progress=run["progress"])
    return Response(render_markdown(run["report"]), mimetype="text/markdown")


def _accepted(run_id: int) -> Response:
    """202 with the run record, and its address to poll in `Location`."""
    response = jsonify(_public_run(services().comparison_store.get_benchmark(run_id)))
    response.status_code = 202
    response.headers["Location"] = url_for("comparison.get_benchmark", run_id=run_id)
    return response


def _weights(weights: dict[Literal["quality", "latency", "cost"], float] | None) -> dict[str, float] | None:
    return dict[str, float](weights.items()) if weights is not None else None


def _public_run(run: dict[str, Any]) -> dict[str, Any]:
    """The run record without the copied dataset items (their count stays)."""
    params = dict(run.get("params") or {})
    params["items"] = len(params.get("items", []))
    return {**run, "params": params}
