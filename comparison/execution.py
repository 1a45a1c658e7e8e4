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
from models.results import GenerationResult

SOURCE = "comparison"


@dataclass(frozen=True)
class CallParams:
    """The generation parameters every compared model receives, unchanged."""

    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    user_id: str | None = None
    tags: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    api_key_id: str | None = None

    def public(self) -> dict[str, Any]:
        """The params that shape the answer, for the stored result."""
        shown = {"system": self.system, "temperature": self.temperature, "max_tokens": self.max_tokens, **self.extra}
        return {k: v for k, v in shown.items() if v is not None}


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


def call_once(model: BaseModel, prompt: str, params: CallParams) -> GenerationResult | dict[str, Any]:
    """One recorded call; a failure comes back as {code, message, request_id} instead of raising."""
    request_id = new_request_id()
    try:
        return model.generate(
            prompt, system=params.system, temperature=params.temperature, max_tokens=params.max_tokens,
            user_id=params.user_id, tags=params.tags, source=SOURCE, request_id=request_id,
            api_key_id=params.api_key_id, **params.extra,
        )
    except Exception as exc:  # noqa: BLE001 - a failing model is reported with its error, never fatal
        return {"code": getattr(exc, "code", type(exc).__name__), "message": str(exc), "request_id": request_id}


def run_model(model: BaseModel, prompt: str, params: CallParams, repetitions: int = 1) -> ModelRun:
    """`repetitions` sequential calls of one model, so its latencies do not compete with each other."""
    run = ModelRun(model.name)
    for _ in range(repetitions):
        outcome = call_once(model, prompt, params)
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
