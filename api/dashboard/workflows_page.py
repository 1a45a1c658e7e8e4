"""The workflows pages: saved definitions drawn as graphs and the recent runs; a run's page with each step's status,
output or error, and a Resume button for a failed or interrupted run (the engine call `/api` resume makes)."""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, session, url_for
from werkzeug.wrappers import Response

from api.dashboard import bp, page
from api.dashboard.workflow_graph import layout
from api.services import services
from core.errors import AppError
from models.params import CallContext
from workflows.definitions import load_definition
from workflows.store import RESUMABLE

RECENT_RUNS = 50

page("workflows", "Workflows")


@bp.get("/workflows")
def workflows() -> str:
    engine = services().workflows
    saved = [{**workflow, "graph": layout(load_definition(workflow["definition"]))}
             for workflow in engine.list_workflows()]
    return render_template("dashboard/workflows.html", workflows=saved, runs=engine.list_runs(RECENT_RUNS))


@bp.get("/workflows/runs/<run_id>")
def workflow_run(run_id: str) -> str:
    return _run_page(run_id)


@bp.post("/workflows/runs/<run_id>/resume")
def resume_workflow_run(run_id: str) -> Response | tuple[str, int]:
    """Resume, then show the run; a refusal or a step failing again is shown on the run's page."""
    caller = CallContext(source="workflow", api_key_id=session.get("dashboard_key_id"))
    try:
        services().workflows.resume(run_id, caller=caller)
    except AppError as error:
        return _run_page(run_id, error=error.message), error.http_status
    return redirect(url_for("dashboard.workflow_run", run_id=run_id))


def _run_page(run_id: str, error: str | None = None) -> str:
    run: dict[str, Any] = services().workflows.get_run(run_id)
    statuses = {step["name"]: step["status"] for step in run["steps"]}
    return render_template("dashboard/workflow_run.html", run=run, error=error, resumable=run["status"] in RESUMABLE,
                           graph=layout(load_definition(run["definition"]), statuses))
