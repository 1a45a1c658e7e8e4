"""Workflow endpoints: run templates or ad-hoc steps, save versioned definitions, inspect and resume runs."""

from __future__ import annotations

from typing import Any, Literal

from flask import Blueprint, g, jsonify
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.errors import ApiError, error_response
from api.validation import parse_body, parse_query
from api.wiring import services
from workflows.definitions import WORKFLOW_NAME, WorkflowDefinition, load_definition
from workflows.errors import WorkflowError
from workflows.graph import mermaid
from workflows.step_runner import Caller
from workflows.workflow_engine import WorkflowEngine
from workflows.workflow_templates import WorkflowTemplates

bp = Blueprint("workflows", __name__, url_prefix="/api")


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
    variables: dict[str, Any] = Field(default_factory=dict)
    user_id: str | None = Field(default=None, max_length=200)
    tags: list[str] = Field(default_factory=list, max_length=50)

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
    version: int | None = Field(default=None, ge=1)


@bp.errorhandler(WorkflowError)
def _workflow_error(error: WorkflowError):  # noqa: ANN202
    return error_response(ApiError(error.http_status, error.code, error.message, **error.details))


def _engine() -> WorkflowEngine:
    return services().workflows


def _caller(user_id: str | None = None, tags: list[str] | None = None) -> Caller:
    """Attribute the run's calls to the requesting API key (and user), like `/api/generate` does."""
    return Caller(user_id=user_id, api_key_id=g.get("api_key_id"), tags=tuple(tags or ()))


@bp.post("/workflow")
def run_workflow():  # noqa: ANN201
    body = parse_body(RunRequest)
    engine, caller = _engine(), _caller(body.user_id, body.tags)
    if body.workflow is not None:
        result = engine.run_saved(body.workflow, body.input, version=body.version, variables=body.variables,
                                  caller=caller)
    else:
        definition = (WorkflowTemplates.get_template(body.template, body.model) if body.template is not None
                      else {"name": body.name, "model": body.model, "steps": body.steps})
        result = engine.run(definition, body.input, variables=body.variables, caller=caller)
    return jsonify({"status": "success", "workflow": result})


@bp.get("/workflow/templates")
def list_templates():  # noqa: ANN201
    templates = WorkflowTemplates.get_all_templates()
    return jsonify({"templates": templates, "count": len(templates)})


@bp.post("/workflows")
def save_workflow():  # noqa: ANN201
    definition = parse_body(WorkflowDefinition)
    saved = _engine().save_workflow(definition)
    return jsonify({"status": "success", "workflow": saved}), 201


@bp.get("/workflows")
def list_workflows():  # noqa: ANN201
    workflows = _engine().list_workflows()
    return jsonify({"workflows": workflows, "count": len(workflows)})


@bp.get("/workflows/<name>")
def get_workflow(name: str):  # noqa: ANN201
    query = parse_query(VersionQuery)
    return jsonify({"workflow": _engine().get_workflow(name, query.version)})


@bp.get("/workflows/<name>/versions")
def list_versions(name: str):  # noqa: ANN201
    versions = _engine().list_versions(name)
    return jsonify({"name": name, "versions": versions, "count": len(versions)})


@bp.get("/workflows/<name>/graph")
def workflow_graph(name: str):  # noqa: ANN201
    query = parse_query(VersionQuery)
    saved = _engine().get_workflow(name, query.version)
    chart = mermaid(load_definition(saved["definition"]))
    return jsonify({"name": name, "version": saved["version"], "format": "mermaid", "graph": chart})


@bp.get("/workflow/runs")
def list_runs():  # noqa: ANN201
    query = parse_query(RunsQuery)
    runs = _engine().list_runs(query.limit, status=query.status, workflow_name=query.workflow)
    return jsonify({"runs": runs, "count": len(runs)})


@bp.get("/workflow/runs/<run_id>")
def get_run(run_id: str):  # noqa: ANN201
    return jsonify({"run": _engine().get_run(run_id)})


@bp.post("/workflow/runs/<run_id>/resume")
def resume_run(run_id: str):  # noqa: ANN201
    return jsonify({"status": "success", "workflow": _engine().resume(run_id, caller=_caller())})
