"""Benchmarks: every dataset item on every model, scored, stored as it completes, then summarized in a report.

Progress is the run record's `completed` / `total`, updated with each stored answer; the CLI shows it as a
progress bar through `on_progress`, and HTTP callers poll the run record while it runs as a background job (on a
background thread when no job runner is wired, as for a library `BenchmarkRunner()`).
A running run records its runner (`owner`) and a `heartbeat_at` the runner refreshes; a run whose runner died
becomes `interrupted` (at the next runner's start or the service's next sweep), and `resume` finishes it, asking
only for the answers it does not have yet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from typing import TYPE_CHECKING, Any

from comparison.dataset import BenchmarkItem, Dataset, load_dataset
from comparison.errors import BenchmarkNotResumableError, ComparisonConfigError
from comparison.execution import COMPARISON_CONTEXT, call_once, run_concurrently
from comparison.reports import DEFAULT_QUALITY_BAR, build_report
from comparison.scoring import ScoringPlan, build_scoring, mean_score
from models.base_model import BaseModel
from models.model_registry import ModelRegistry
from models.params import PromptParams
from models.results import GenerationResult
from storage.heartbeat import RunHeartbeat, stale_after
from storage.jobs.runner import JobContext

if TYPE_CHECKING:
    from comparison.comparison_store import ComparisonStore

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]  # (answers stored so far, total answers)
# Hands work to the job runner: (job kind, payload, key starting it) -> job id
Launcher = Callable[..., int]
RESUMABLE = ("interrupted", "failed")
WAIT_POLL_SECONDS = 0.05


class BenchmarkRunner:
    """Runs benchmarks through the registry and records them in the store.

    Construction, `reclaim_interrupted` (which the service's sweep calls) and `resume` mark runs `interrupted`
    whose executing process stopped beating (it died); runs that another live process is executing, and `pending`
    runs, are left alone.
    """

    def __init__(self, registry: ModelRegistry | None = None, store: ComparisonStore | None = None, *,
                 recover_interrupted: bool = True) -> None:
        self.registry = registry or ModelRegistry()
        if store is None:
            from comparison.comparison_store import ComparisonStore

            store = ComparisonStore(self.registry.engine)
        self.store = store
        self._threads: dict[int, threading.Thread] = {}
        self.launch: Launcher | None = None  # set by the composition root: background runs become jobs
        self._lock = threading.Lock()
        self.heartbeat = RunHeartbeat(self.store.benchmark_heartbeat, name="benchmark-heartbeat",
                                      interval=self.registry.settings.run_heartbeat_seconds)
        self.interrupted_at_start = self.reclaim_interrupted() if recover_interrupted else 0

    @property
    def owner(self) -> str:
        """Whom this runner's benchmark runs are recorded as executed by: host, process and runner."""
        return self.heartbeat.owner

    def reclaim_interrupted(self) -> int:
        """Mark the runs whose runner died `interrupted`, so they can be resumed; returns how many."""
        marked = self.store.mark_interrupted_benchmarks(stale_after(self.heartbeat.interval))
        if marked:
            log.warning("Marked %d benchmark run(s) left running as interrupted", marked)
        return marked

    def create(self, models: Sequence[str], dataset: Dataset | None = None, *, temperature: float | None = 0.0,
               max_tokens: int | None = None, quality_bar: float = DEFAULT_QUALITY_BAR,
               owner: str | None = None) -> int:
        """Validate models and parameters and record a pending run; nothing is called yet.

        `owner` is the API key starting it: the run is its own, and its calls count against that key's budgets.
        """
        if isinstance(models, str) or not models:
            raise ComparisonConfigError("Give a non-empty list of model names")
        if not 0 <= quality_bar <= 1:
            raise ComparisonConfigError("quality_bar must be between 0 and 1")
        names = [self.registry.require_model(name).name for name in models]
        if len(set(names)) != len(names):
            raise ComparisonConfigError("Each model may appear only once", details={"models": names})
        dataset = dataset or load_dataset()
        params = {"temperature": temperature, "max_tokens": max_tokens, "quality_bar": quality_bar,
                  "items": [asdict(item) for item in dataset.items]}
        return self.store.create_benchmark(dataset=dataset.name, models=names,
                                           total=len(dataset.items) * len(names), params=params, owner=owner)

    def execute(self, run_id: int, on_progress: Progress | None = None) -> dict[str, Any]:
        """Run a created benchmark to the end; returns the report (also stored in the run record)."""
        with self.heartbeat.driving() as owner:
            if not self.store.claim_benchmark(run_id, owner):  # atomic: two callers cannot both start it
                status = self.store.get_benchmark(run_id)["status"]
                raise ComparisonConfigError(f"Benchmark run {run_id} has already been started ({status})")
            return self._drive(run_id, on_progress)

    def resume(self, run_id: int, on_progress: Progress | None = None) -> dict[str, Any]:
        """Finish a failed or interrupted run; only the answers it does not have yet are asked for."""
        with self.heartbeat.driving() as owner:
            self._claim_for_resume(run_id, owner)
            return self._drive(run_id, on_progress)

    def start_resume(self, run_id: int) -> None:
        """Claim a failed or interrupted run at once (refusing as `resume` does), then finish it on a background
        thread; poll the run record for progress."""
        with self.heartbeat.driving() as owner:
            self._claim_for_resume(run_id, owner)
        self._in_background(run_id, "resume", lambda: self._drive_owned(run_id))

    def _claim_for_resume(self, run_id: int, owner: str) -> None:
        if self.store.get_benchmark(run_id)["status"] == "running":
            self.reclaim_interrupted()  # its runner may have died since the last sweep
        if not self.store.claim_benchmark(run_id, owner, RESUMABLE):  # atomic, like the first start
            status = self.store.get_benchmark(run_id)["status"]
            raise BenchmarkNotResumableError(f"Benchmark run {run_id} is {status}; only failed or interrupted runs "
                                             "resume", details={"id": run_id, "status": status})

    def _drive_owned(self, run_id: int) -> dict[str, Any]:
        with self.heartbeat.driving():
            return self._drive(run_id, None)

    def run_job(self, context: JobContext) -> dict[str, Any]:
        """The handler of a `benchmark` job: start the run, or finish one `start_resume` claimed (in whichever
        process runs the job, which takes the claim over with its own heartbeat); returns {run_id}."""
        run_id, action = int(context.payload["run_id"]), context.payload["action"]
        if action == "start":
            self.execute(run_id)
            return {"run_id": run_id}
        with self.heartbeat.driving() as owner:
            if not self.store.claim_benchmark(run_id, owner, ("running",)):
                status = self.store.get_benchmark(run_id)["status"]
                raise BenchmarkNotResumableError(f"Benchmark run {run_id} is {status}: its resume lapsed",
                                                 details={"id": run_id, "status": status})
            self._drive(run_id, None)
        return {"run_id": run_id}

    def _drive(self, run_id: int, on_progress: Progress | None) -> dict[str, Any]:
        """Ask every (item, model) pair the claimed run has no answer for yet, then store the report."""
        run = self.store.get_benchmark(run_id)
        params = run["params"]
        items = [BenchmarkItem(**item) for item in params["items"]]
        answered = {(result["item_id"], result["model"]) for result in self.store.benchmark_results(run_id)}

        def stored(result: dict[str, Any]) -> None:
            completed = self.store.record_benchmark_result(run_id, result)
            if on_progress is not None:
                on_progress(completed, run["total"])

        try:
            models = [self.registry.require_model(name) for name in run["models"]]
            for item in items:
                missing = [model for model in models if (item.id, model.name) not in answered]
                if missing:
                    self._run_item(run_id, item, missing, params, stored)
            report = build_report(run, self.store.benchmark_results(run_id), params["quality_bar"])
        except Exception as exc:
            self.store.mark_benchmark(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
            raise
        self.store.mark_benchmark(run_id, "completed", report=report)
        return report

    def run(self, models: Sequence[str], dataset: Dataset | None = None, *, on_progress: Progress | None = None,
            **options: Any) -> tuple[int, dict[str, Any]]:
        """Create and execute in the caller's thread: (run id, report)."""
        run_id = self.create(models, dataset, **options)
        return run_id, self.execute(run_id, on_progress)

    def start(self, models: Sequence[str], dataset: Dataset | None = None, **options: Any) -> int:
        """Create the run and execute it on a background thread; poll the run record for progress."""
        run_id = self.create(models, dataset, **options)
        self._in_background(run_id, "start", lambda: self.execute(run_id))
        return run_id

    def wait(self, run_id: int, timeout: float | None = None) -> bool:
        """Block until a background run has finished (its record no longer pending or running); True when it has."""
        with self._lock:
            thread = self._threads.get(run_id)
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.store.get_benchmark(run_id)["status"] in ("pending", "running"):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(WAIT_POLL_SECONDS)
        return True

    def _in_background(self, run_id: int, action: str, work: Callable[[], object]) -> None:
        """As a `benchmark` job when a job runner is wired, else on a thread of this process."""
        if self.launch is not None:
            owner = self.store.get_benchmark(run_id)["api_key_id"]
            self.launch("benchmark", {"run_id": run_id, "action": action}, api_key_id=owner)
            return
        thread = threading.Thread(target=self._logged, args=(run_id, work), name=f"benchmark-{run_id}", daemon=True)
        with self._lock:
            self._threads[run_id] = thread
        thread.start()

    def _logged(self, run_id: int, work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:  # the run record already says "failed" with the error
            log.exception("Benchmark run %s failed", run_id)
        finally:
            with self._lock:
                self._threads.pop(run_id, None)

    def _run_item(self, run_id: int, item: BenchmarkItem, models: Sequence[BaseModel], params: dict[str, Any],
                  stored: Callable[[dict[str, Any]], None]) -> None:
        """One item on every model at once; each answer is scored and stored as soon as it arrives."""
        owner = self.store.get_benchmark(run_id)["api_key_id"]
        plan = build_scoring(item.scorers, self.registry, item.reference, owner)
        call = PromptParams(system=item.system, temperature=params["temperature"], max_tokens=params["max_tokens"])
        context = COMPARISON_CONTEXT.model_copy(update={"api_key_id": owner}).with_tags("benchmark",
                                                                                       f"benchmark:{run_id}")

        def answer(model: BaseModel) -> dict[str, Any]:
            return score_result(item, model.name, call_once(model, item.prompt, call, context), plan)

        run_concurrently([partial(answer, model) for model in models], stored)


def score_result(item: BenchmarkItem, model: str, outcome: GenerationResult | dict[str, Any],
                 plan: ScoringPlan) -> dict[str, Any]:
    """The stored row of one answer: correct when it answered and every scorer passed."""
    if not isinstance(outcome, GenerationResult):
        return {"item_id": item.id, "task": item.task, "model": model, "request_id": outcome["request_id"],
                "status": "error", "correct": False, "scores": [],
                "error": {"code": outcome["code"], "message": outcome["message"]}}
    scores = plan.score_answer(outcome.response, item.prompt)
    return {
        "item_id": item.id, "task": item.task, "model": model, "request_id": outcome.request_id,
        "status": "success", "response": outcome.response, "score": mean_score(scores),
        "correct": bool(scores) and all(s.passed for s in scores), "latency": outcome.latency,
        "cost": outcome.cost, "tokens": outcome.tokens, "scores": [s.to_dict() for s in scores],
    }
