"""The workflow engine: runs chains, parallel groups and conditional steps; persists and resumes runs."""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from models.errors import UnknownModelError
from models.model_registry import ModelRegistry
from models.params import CallContext
from models.request_log import RequestLogRepository
from storage.clock import utcnow
from storage.database import engine_for
from storage.heartbeat import INTERRUPTED_ERROR, RunHeartbeat, stale_after
from workflows.conditions import evaluate
from workflows.definitions import (
    StepDefinition,
    WorkflowDefinition,
    check_definition,
    check_variables,
    load_definition,
)
from workflows.errors import (
    STEP_FAILURES,
    RunNotFoundError,
    RunNotResumableError,
    WorkflowNotFoundError,
    WorkflowStepFailedError,
    WorkflowValidationError,
)
from workflows.history import history_row
from workflows.step_runner import WORKFLOW_CONTEXT, StepFailedError, StepOutcome, StepRunner
from workflows.store import RESUMABLE, WorkflowStore

log = logging.getLogger(__name__)

DONE = ("succeeded", "skipped", "defaulted")
PRODUCED = ("succeeded", "defaulted")


class _StageFailure(Exception):
    """A step of the current stage failed; carries the step name and the runner's error."""

    def __init__(self, step: str, error: StepFailedError) -> None:
        super().__init__(error.reason)
        self.step = step
        self.error = error


@dataclass
class _ActiveRun:
    """One execution of a stored run: its definition, resolved models, step records and whom calls are for."""

    run: dict[str, Any]
    definition: WorkflowDefinition
    models: list[str]
    caller: CallContext

    @property
    def run_id(self) -> str:
        return self.run["run_id"]

    @property
    def records(self) -> list[dict[str, Any]]:
        return self.run["steps"]


class WorkflowEngine:
    """Execute multi-step workflows.

    Construction, `reclaim_interrupted` (which the service's sweep calls) and `resume` mark runs `interrupted` whose
    driving process stopped beating (it died); runs that another live process (a gunicorn worker, a CLI command,
    another host) is driving are left alone.
    """

    def __init__(self, model_registry: ModelRegistry | None = None, db_path: Engine | str | None = None, *,
                 recover_interrupted: bool = True, max_parallel: int = 8) -> None:
        """Runs are stored in `db_path` (an Engine, a URL or, as originally, a SQLite path); default: the registry's."""
        self.registry = model_registry or ModelRegistry()
        self.store = WorkflowStore(self.registry.engine if db_path is None else engine_for(db_path))
        self.runner = StepRunner(self.registry, RequestLogRepository(self.registry.engine))
        self.max_parallel = max_parallel
        self.heartbeat = RunHeartbeat(self.store.heartbeat, name="workflow-heartbeat",
                                      interval=self.registry.settings.run_heartbeat_seconds)
        self.interrupted_at_start = self.reclaim_interrupted() if recover_interrupted else 0

    @property
    def model_registry(self) -> ModelRegistry:
        """The original attribute name for `registry`."""
        return self.registry

    @property
    def owner(self) -> str:
        """Whom this engine's runs are recorded as driven by: host, process and engine."""
        return self.heartbeat.owner

    def reclaim_interrupted(self) -> int:
        """Mark the runs whose driver died `interrupted` (resumable), and record the call each had in flight as
        an error, since its own process never will; returns how many runs."""
        interrupted = self.store.mark_interrupted(stale_after(self.heartbeat.interval))
        if interrupted.run_ids:
            log.warning("Marked %d workflow run(s) left running as interrupted", len(interrupted.run_ids))
        for step in interrupted.steps:
            if step["request_id"]:
                self._record_lost_call(step)
        return len(interrupted.run_ids)

    def _record_lost_call(self, step: dict[str, Any]) -> None:
        run = self.store.get_run(step["run_id"])
        assert run is not None
        definition = load_definition(run["definition"]).steps[step["position"]]
        context = WORKFLOW_CONTEXT.model_copy(update={"api_key_id": run["api_key_id"]}).with_tags(
            f"workflow_run:{step['run_id']}")
        try:
            self.runner.record_interrupted(definition, step["request_id"], step["model"], step["prompt"], context,
                                           f"{INTERRUPTED_ERROR} (workflow run {step['run_id']})")
        except UnknownModelError:
            log.warning("Call %s of interrupted run %s is not recorded: model %r is no longer registered",
                        step["request_id"], step["run_id"], step["model"])

    # -- running -------------------------------------------------------------------------------

    def execute_workflow(self, workflow_name: str, steps: list[dict[str, Any]] | list[StepDefinition],
                         initial_input: Any, *, model: str | None = None,
                         variables: dict[str, Any] | None = None, caller: CallContext | None = None) -> dict[str, Any]:
        """Run `steps` in order (the original API); raises WorkflowStepFailedError when a step fails."""
        definition = load_definition({"name": workflow_name, "model": model, "steps": list(steps)})
        return self.run(definition, initial_input, variables=variables, caller=caller)

    def run(self, definition: WorkflowDefinition | dict[str, Any], initial_input: Any, *,
            variables: dict[str, Any] | None = None, version: int | None = None,
            caller: CallContext | None = None, run_id: str | None = None) -> dict[str, Any]:
        """Validate everything (no model is called before), persist a new run, then drive it. `run_id`: the id
        the run takes (a background run's, announced before it starts); a new one by default."""
        definition = load_definition(definition)
        variables = dict(variables or {})
        models = self._validate(definition, variables)
        run_id = run_id or str(uuid.uuid4())
        input_text = initial_input if isinstance(initial_input, str) else str(initial_input)
        with self.heartbeat.driving() as owner:
            self.store.create_run(
                run_id, workflow_name=definition.name, workflow_version=version, definition=definition.dump(),
                input_text=input_text, variables=variables, owner=owner,
                api_key_id=caller.api_key_id if caller else None,
                steps=[{"name": s.name, "step_group": s.group, "model": models[i]}
                       for i, s in enumerate(definition.steps)],
            )
            return self._drive(run_id, definition, models, caller)

    def run_saved(self, name: str, initial_input: Any, *, version: int | None = None,
                  variables: dict[str, Any] | None = None, caller: CallContext | None = None,
                  run_id: str | None = None) -> dict[str, Any]:
        """Run a saved workflow (default: its latest version); the run records the version used."""
        saved = self.get_workflow(name, version)
        return self.run(saved["definition"], initial_input, variables=variables, version=saved["version"],
                        caller=caller, run_id=run_id)

    def check(self, definition: WorkflowDefinition | dict[str, Any], variables: dict[str, Any] | None = None) -> None:
        """Raise what `run` would for this definition and these variables, without running anything: a run started
        in the background is refused up front, not when its job starts."""
        self._validate(load_definition(definition), dict(variables or {}))

    def resume(self, run_id: str, *, caller: CallContext | None = None) -> dict[str, Any]:
        """Continue a failed or interrupted run from its first incomplete step; completed steps are kept."""
        run = self.store.get_run(run_id)
        if run is not None and run["status"] == "running" and self.reclaim_interrupted():
            run = self.store.get_run(run_id)  # its driver may have died since the last sweep
        if run is None:
            raise RunNotFoundError(f"No workflow run {run_id!r}", details={"run_id": run_id})
        if run["status"] not in RESUMABLE:
            raise RunNotResumableError(f"Run {run_id} is {run['status']}; only failed or interrupted runs resume",
                                       details={"run_id": run_id, "status": run["status"]})
        definition = load_definition(run["definition"])
        models = self._validate(definition, run["variables"] or {})
        with self.heartbeat.driving() as owner:
            if not self.store.claim_for_resume(run_id, owner):
                raise RunNotResumableError(f"Run {run_id} is already being resumed", details={"run_id": run_id})
            return self._drive(run_id, definition, models, caller)

    def _validate(self, definition: WorkflowDefinition, variables: dict[str, Any]) -> list[str]:
        check_definition(definition)
        check_variables(definition, variables)
        return [self._resolve_models(position, step, definition) for position, step in enumerate(definition.steps)]

    def _resolve_models(self, position: int, step: StepDefinition, definition: WorkflowDefinition) -> str:
        checks = [("model", step.model or definition.model or self.registry.default_model_name)]
        if step.on_error.fallback_model:
            checks.append(("on_error.fallback_model", step.on_error.fallback_model))
        resolved = []
        for field, name in checks:
            try:
                resolved.append(self.registry.resolve(name))
            except UnknownModelError as exc:
                raise WorkflowValidationError.single(f"steps.{position}.{field}", exc.message) from None
        return resolved[0]

    def _drive(self, run_id: str, definition: WorkflowDefinition, models: list[str],
               caller: CallContext | None) -> dict[str, Any]:
        run = self.store.get_run(run_id)
        assert run is not None
        caller = (caller or WORKFLOW_CONTEXT).model_copy(update={"source": "workflow"})
        active = _ActiveRun(run, definition, models, caller.with_tags(f"workflow_run:{run_id}"))
        started = time.monotonic()
        try:
            for stage in definition.stages():
                pending = [p for p in stage if active.records[p]["status"] not in DONE]
                if pending:
                    self._run_stage(active, pending, _context(active))
        except _StageFailure as failure:
            self.store.finish_run(run_id, "failed", error=failure.error.reason, error_step=failure.step,
                                  wall_time=time.monotonic() - started)
            raise WorkflowStepFailedError(
                run_id, failure.step, failure.error.reason, cause_code=failure.error.code,
                http_status=failure.error.http_status, result=self.get_run(run_id, with_definition=False),
            ) from failure.error
        except Exception as exc:
            self.store.finish_run(run_id, "failed", error=f"{type(exc).__name__}: {exc}",
                                  wall_time=time.monotonic() - started)
            raise
        final_output = _context(active)["input"]
        self.store.finish_run(run_id, "succeeded", final_output=final_output, wall_time=time.monotonic() - started)
        return self.get_run(run_id, with_definition=False)

    def _run_stage(self, active: _ActiveRun, pending: list[int], context: dict[str, Any]) -> None:
        to_run = [p for p in pending if self._should_run(active, p, context)]
        if len(to_run) <= 1:
            for position in to_run:
                self._run_step(active, position, context)
            return
        with ThreadPoolExecutor(max_workers=min(len(to_run), self.max_parallel),
                                thread_name_prefix=f"workflow-{active.run_id[:8]}") as pool:
            futures = [pool.submit(self._run_step, active, position, context) for position in to_run]
            wait(futures)
        for future in futures:  # report the first failure in definition order, after all members finished
            future.result()

    def _should_run(self, active: _ActiveRun, position: int, context: dict[str, Any]) -> bool:
        step = active.definition.steps[position]
        if not step.when:
            return True
        try:
            if evaluate(step.when, context):
                return True
        except STEP_FAILURES as exc:
            try:
                outcome = self.runner.recover(step, StepOutcome(model=active.models[position]), exc)
            except StepFailedError as error:
                self._save_failure(active, position, error)
                raise _StageFailure(step.name or "", error) from None
            self._save_outcome(active, position, outcome)
            return False
        self._save(active, position, status="skipped", output="", parsed=None, finished_at=utcnow())
        return False

    def _run_step(self, active: _ActiveRun, position: int, context: dict[str, Any]) -> None:
        step = active.definition.steps[position]
        self._save(active, position, status="running", started_at=utcnow(), error=None)
        try:
            outcome = self.runner.run(step, context, active.models[position], caller=active.caller,
                                      on_attempt=lambda attempt: self._save_attempt(active, position, attempt))
        except StepFailedError as error:
            self._save_failure(active, position, error)
            raise _StageFailure(step.name or "", error) from None
        except Exception as exc:
            self._save(active, position, status="failed", error=f"{type(exc).__name__}: {exc}", finished_at=utcnow())
            raise
        self._save_outcome(active, position, outcome)

    def _save_attempt(self, active: _ActiveRun, position: int, outcome: StepOutcome) -> None:
        """Persist the call about to start (its id last in `attempts`), so that if this process dies the sweep
        finds it; not mirrored in memory, where the record keeps the figures from before this drive."""
        earlier = active.records[position]["attempts"] or []
        self.store.update_step(active.run_id, position, prompt=outcome.prompt, model=outcome.model,
                               request_id=outcome.attempts[-1], attempts=[*earlier, *outcome.attempts])

    def _save_outcome(self, active: _ActiveRun, position: int, outcome: StepOutcome) -> None:
        self._save(active, position, **_figures(active.records[position], outcome), status=outcome.status,
                   prompt=outcome.prompt, output=outcome.output, parsed=outcome.parsed, response=outcome.response,
                   model=outcome.model, error=outcome.error, finished_at=utcnow())

    def _save_failure(self, active: _ActiveRun, position: int, error: StepFailedError) -> None:
        outcome = error.outcome
        self._save(active, position, **_figures(active.records[position], outcome), status="failed",
                   model=outcome.model, response=outcome.response, error=f"{error.code}: {error.reason}",
                   finished_at=utcnow())

    def _save(self, active: _ActiveRun, position: int, **values: Any) -> None:
        """Persist a step's new values, then mirror them in memory (each thread owns its step's record)."""
        self.store.update_step(active.run_id, position, **values)
        active.records[position].update(values)

    # -- reading -------------------------------------------------------------------------------

    def get_run(self, run_id: str, *, with_definition: bool = True, owner: str | None = None) -> dict[str, Any]:
        """A run with its steps, shaped like `execute_workflow`'s result; another tenant's (`owner`) is absent."""
        run = self.store.get_run(run_id)
        if run is None or (owner is not None and run["api_key_id"] != owner):
            raise RunNotFoundError(f"No workflow run {run_id!r}", details={"run_id": run_id})
        return _public_run(run, with_definition=with_definition)

    def list_runs(self, limit: int = 50, *, status: str | None = None, workflow_name: str | None = None,
                  owner: str | None = None) -> list[dict[str, Any]]:
        return self.store.list_runs(limit, status=status, workflow_name=workflow_name, api_key_id=owner)

    def get_workflow_history(self, limit: int = 10) -> list[dict[str, Any]]:
        """The original name: the latest runs, newest first, each also under the original's keys."""
        runs = (self.store.get_run(summary["run_id"]) for summary in self.list_runs(limit))
        return [history_row(run) for run in runs if run is not None]

    # -- saved definitions ---------------------------------------------------------------------

    def save_workflow(self, definition: WorkflowDefinition | dict[str, Any]) -> dict[str, Any]:
        """Validate and store `definition` as the next version of its name."""
        definition = load_definition(definition)
        check_definition(definition)
        for position, step in enumerate(definition.steps):
            self._resolve_models(position, step, definition)
        version = self.store.save_definition(definition.name, definition.dump(), definition.description)
        return self.get_workflow(definition.name, version)

    def get_workflow(self, name: str, version: int | None = None) -> dict[str, Any]:
        saved = self.store.get_definition(name, version)
        if saved is None:
            which = f" version {version}" if version is not None else ""
            raise WorkflowNotFoundError(f"No saved workflow {name!r}{which}",
                                        details={"name": name, "version": version})
        return saved

    def list_workflows(self) -> list[dict[str, Any]]:
        return self.store.list_definitions()

    def list_versions(self, name: str) -> list[dict[str, Any]]:
        versions = self.store.list_versions(name)
        if not versions:
            raise WorkflowNotFoundError(f"No saved workflow {name!r}", details={"name": name})
        return versions


def _context(active: _ActiveRun) -> dict[str, Any]:
    """Template values: `input` is the previous stage's output (joined for a group), skipped steps pass it on."""
    run, records = active.run, active.records
    current = run["input"]
    steps: dict[str, dict[str, Any]] = {}
    for stage in active.definition.stages():
        if any(records[p]["status"] not in DONE for p in stage):
            break
        produced = [records[p]["output"] or "" for p in stage if records[p]["status"] in PRODUCED]
        for p in stage:
            record = records[p]
            steps[record["name"]] = {"output": record["output"] or "", "parsed": record["parsed"],
                                     "status": record["status"]}
        if produced:
            current = "\n\n".join(produced)
    return {**active.definition.variables, **(run["variables"] or {}), "input": current,
            "workflow_input": run["input"], "steps": steps}


def _figures(previous: dict[str, Any], outcome: StepOutcome) -> dict[str, Any]:
    """A resumed step keeps the figures and request ids of its earlier attempts."""
    def plus(old: Any, new: Any) -> Any:
        return new if old is None else old if new is None else old + new

    return {"tokens": plus(previous.get("tokens"), outcome.tokens), "cost": plus(previous.get("cost"), outcome.cost),
            "latency": plus(previous.get("latency"), outcome.latency),
            "attempts": [*(previous.get("attempts") or []), *outcome.attempts],
            "request_id": outcome.request_id or previous.get("request_id")}


def _public_run(run: dict[str, Any], *, with_definition: bool) -> dict[str, Any]:
    steps = [{"step": s["position"] + 1, "name": s["name"], "group": s["step_group"], "model": s["model"],
              "status": s["status"], "prompt": s["prompt"], "output": s["output"], "parsed": s["parsed"],
              "response": s["response"], "tokens": s["tokens"], "cost": s["cost"], "latency": s["latency"],
              "request_id": s["request_id"], "attempts": s["attempts"] or [], "error": s["error"],
              "started_at": s["started_at"], "finished_at": s["finished_at"]} for s in run["steps"]]
    result = {"workflow_name": run["workflow_name"], "run_id": run["run_id"], "status": run["status"],
              "final_output": run["final_output"], "steps": steps}
    result.update({key: value for key, value in run.items() if key not in (*result, "definition")})
    if with_definition:
        result["definition"] = run["definition"]
    return result
