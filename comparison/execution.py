"""Runs the same prompt on several models at once, each with identical params, through the managed call path."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from models.base_model import BaseModel
from models.call_path import new_request_id
from models.messages import GenerationRequest
from models.params import CallContext, PromptParams
from models.results import GenerationResult

COMPARISON_CONTEXT = CallContext(source="comparison")


@dataclass
class ModelRun:
    """Every attempt of one model: the successful results and the errors, with their request ids."""

    model: str
    results: list[GenerationResult] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.results)

    @property
    def request_ids(self) -> list[str]:
        return [r.request_id for r in self.results] + [e["request_id"] for e in self.errors]


def call_once(model: BaseModel, prompt: str, params: PromptParams,
              context: CallContext = COMPARISON_CONTEXT) -> GenerationResult | dict[str, Any]:
    """One recorded call with the same params as every other model; a failure comes back as
    {code, message, request_id} instead of raising."""
    request_id = new_request_id()
    try:
        request = GenerationRequest.build(prompt, system=params.system, params=params.only_generation())
        return model.run(request, context.model_copy(update={"request_id": request_id})).result
    except Exception as exc:  # a failing model is reported with its error, never fatal
        return {"code": getattr(exc, "code", type(exc).__name__), "message": str(exc), "request_id": request_id}


def run_model(model: BaseModel, prompt: str, params: PromptParams, context: CallContext,
              repetitions: int = 1) -> ModelRun:
    """`repetitions` sequential calls of one model, so its latencies do not compete with each other."""
    run = ModelRun(model.name)
    for _ in range(repetitions):
        outcome = call_once(model, prompt, params, context)
        if isinstance(outcome, GenerationResult):
            run.results.append(outcome)
        else:
            run.errors.append(outcome)
    return run


def run_concurrently(
    tasks: Sequence[Callable[[], Any]], on_done: Callable[[Any], None] | None = None,
) -> tuple[list[Any], float]:
    """Run every task on its own thread; returns the results in task order and the wall time."""
    started = time.monotonic()
    results: list[Any] = [None] * len(tasks)
    if not tasks:
        return results, 0.0
    with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="compare") as pool:
        futures = {pool.submit(task): index for index, task in enumerate(tasks)}
        for future in as_completed(futures):
            results[futures[future]] = future.result()
            if on_done is not None:
                on_done(results[futures[future]])
    return results, time.monotonic() - started


def latency_stats(latencies: Sequence[float]) -> dict[str, Any]:
    """Median and spread of repeated calls."""
    if not latencies:
        return {"runs": 0, "median": None, "min": None, "max": None, "stdev": None}
    return {
        "runs": len(latencies),
        "median": statistics.median(latencies),
        "min": min(latencies),
        "max": max(latencies),
        "stdev": statistics.stdev(latencies) if len(latencies) > 1 else 0.0,
    }
