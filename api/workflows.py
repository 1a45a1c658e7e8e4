"""Workflow endpoints: run templates or ad-hoc steps, save versioned definitions, inspect and resume runs."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from flask import Response, g, jsonify
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.openapi import MAX_ROW_ID, ApiBlueprint, json_object
from api.services import services
from api.tenancy import tenant
from models.params import MAX_TAGS, CallContext, MaxTokens, Tag, UserId
from workflows.definitions import WORKFLOW_NAME, WorkflowDefinition, load_definition
from workflows.graph import mermaid
from workflows.workflow_engine import WorkflowEngine
from workflows.workflow_templates import WorkflowTemplates

bp = ApiBlueprint("workflows", __name__, url_prefix="/api")


class RunRequest(BaseModel):
    """Exactly one of `template`, `steps` or `workflow` (a saved name, optionally with `version`)."""

    model_config = ConfigDict(extra="forbid")

    template: str | None = Field(default=None, max_length=100)
    steps: list[dict[str, Any]] | None = Field(default=None, min_length=1, max_length=50)
    workflow: str | None = Field(default=None, max_length=100)
    version: int | None = Field(default=None, ge=1)
    name: str = Field(default="custom", pattern=WORKFLOW_NAME)
    input: str = Field(max_length=1_000_000)
    model: str | None = Field(default=None, max_length=200)
    max_tokens: MaxTokens | None = Field(default=None, description="For steps that set none")
    variables: dict[str, Any] = Field(default_factory=dict)
    user_id: UserId | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=MAX_TAGS)
    run_async: bool = Field(default=False, alias="async",
                            description="Answer 202 with `run_id` and `job_id` at once; a background job runs it")

    @model_validator(mode="after")
    def _one_source(self) -> RunRequest:
        given = [key for key in ("template", "steps", "workflow") if getattr(self, key) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of `template`, `steps` or `workflow`")
        if self.version is not None and self.workflow is None:
            raise ValueError("`version` applies to a saved `workflow` only")
        return self


class RunsQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=500)
    status: Literal["running", "succeeded", "failed", "interrupted"] | None = None
    workflow: str | None = None


class VersionQuery(BaseModel):
    version: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)


class NamePath(BaseModel):
    name: str = Field(max_length=100)


class RunPath(BaseModel):
    run_id: str = Field(max_length=100)


RUN_RESULT = json_object("The run: status, steps with their outputs, final_output, total_cost, total_tokens")


def _engine() -> WorkflowEngine:
    return services().workflows


def _caller(user_id: str | None = None, tags: list[str] | None = None) -> CallContext:
    """Attribute the run's calls to the requesting API key (and user), like `/api/generate` does."""
    return CallContext(source="workflow", user_id=user_id, api_key_id=g.get("api_key_id"),
                       tags=tuple(tags) if tags else None)


@bp.post("/workflow", responses={200: RUN_RESULT, 202: json_object("{status: accepted, run_id, job_id}: with "
                                                                   "`async`, the run's id before it starts")})
def run_workflow(body: RunRequest) -> Response | tuple[Response, int]:
    """Run a built-in template, inline `steps`, or a saved workflow on `input`; with `async`, in the background."""
    engine, caller = _engine(), _caller(body.user_id, body.tags)
    if body.run_async:
        return _run_in_background(engine, body)
    if body.workflow is not None:
        result = engine.run_saved(body.workflow, body.input, version=body.version, variables=body.variables,
                                  caller=caller)
    else:
        result = engine.run(_inline_definition(body), body.input, variables=body.variables, caller=caller)
    return jsonify({"status": "success", "workflow": result})


def _inline_definition(body: RunRequest) -> dict[str, Any]:
    definition: dict[str, Any] = (
        WorkflowTemplates.get_template(body.template, body.model) if body.template is not None
        else {"name": body.name, "model": body.model, "steps": body.steps})
    definition["max_tokens"] = body.max_tokens
    return definition


def _run_in_background(engine: WorkflowEngine, body: RunRequest) -> tuple[Response, int]:
    """Validate now (bad input is a 400 here, not a failed job), then queue a `workflow_run` job whose run takes
    the id answered; poll GET /api/jobs/<job_id> or GET /api/workflow/runs/<run_id>."""
    saved = engine.get_workflow(body.workflow, body.version) if body.workflow is not None else None
    definition = saved["definition"] if saved is not None else _inline_definition(body)
    engine.check(definition, body.variables)
    run_id = str(uuid.uuid4())
    payload = {"run_id": run_id, "definition": definition, "version": saved["version"] if saved else None,
               "input": body.input, "variables": body.variables, "user_id": body.user_id, "tags": body.tags}
    job_id = services().jobs.runner.submit("workflow_run", payload, api_key_id=g.get("api_key_id"))
    return jsonify({"status": "accepted", "run_id": run_id, "job_id": job_id}), 202


@bp.get("/workflow/templates", responses={200: json_object("The built-in templates by name")})
def list_templates() -> Response:
    """The built-in workflow templates."""
    templates = WorkflowTemplates.get_all_templates()
    return jsonify({"templates": templates, "count": len(templates)})


@bp.post("/workflows", responses={201: json_object("The saved definition and its new version")})
def save_workflow(body: WorkflowDefinition) -> tuple[Response, int]:
    """Save a workflow definition as the next version of its name."""
    saved = _engine().save_workflow(body)
    return jsonify({"status": "success", "workflow": saved}), 201


@bp.get("/workflows", responses={200: json_object("Saved workflows with their latest versions")})
def list_workflows() -> Response:
    """Saved workflows."""
    workflows = _engine().list_workflows()
    return jsonify({"workflows": workflows, "count": len(workflows)})


@bp.get("/workflows/<name>", responses={200: json_object("One saved version (the latest by default)")})
def get_workflow(path: NamePath, query: VersionQuery) -> Response:
    """A saved workflow definition."""
    return jsonify({"workflow": _engine().get_workflow(path.name, query.version)})


@bp.get("/workflows/<name>/versions", responses={200: json_object("Every saved version of the workflow")})
def list_versions(path: NamePath) -> Response:
    """The saved versions of a workflow."""
    versions = _engine().list_versions(path.name)
    return jsonify({"name": path.name, "versions": versions, "count": len(versions)})


@bp.get("/workflows/<name>/graph", responses={200: json_object("A Mermaid flowchart of the steps")})
def workflow_graph(path: NamePath, query: VersionQuery) -> Response:
    """The workflow's steps as a Mermaid graph."""
    saved = _engine().get_workflow(path.name, query.version)
    chart = mermaid(load_definition(saved["definition"]))
    return jsonify({"name": path.name, "version": saved["version"], "format": "mermaid", "graph": chart})


@bp.get("/workflow/runs", responses={200: json_object("The newest runs")})
def list_runs(query: RunsQuery) -> Response:
    """Workflow runs, newest first."""
    runs = _engine().list_runs(query.limit, status=query.status, workflow_name=query.workflow, owner=tenant())
    return jsonify({"runs": runs, "count": len(runs)})


@bp.get("/workflow/runs/<run_id>", responses={200: json_object("One run with its steps")})
def get_run(path: RunPath) -> Response:
    """A workflow run and its steps."""
    return jsonify({"run": _engine().get_run(path.run_id, owner=tenant())})


@bp.post("/workflow/runs/<run_id>/resume", responses={200: RUN_RESULT})
def resume_run(path: RunPath) -> Response:
    """Resume an interrupted or failed run from its first unfinished step."""
    _engine().get_run(path.run_id, owner=tenant())  # another tenant's run is as absent as a missing one
    return jsonify({"status": "success", "workflow": _engine().resume(path.run_id, caller=_caller())})
