"""Rollouts over HTTP and the CLI, and the one place where a call naming a model is routed by a running rollout.

`flask rollouts list [--status S]` lists them; `show ID` prints one and its timeline; `advance ID` takes one look now;
`pause ID`, `resume ID` and `cancel ID` move it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, get_args

import click
from flask import Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from ab_testing.rollout_spec import RolloutSpec
from api.openapi import ApiBlueprint, RowId, json_object
from api.services import services
from api.tenancy import require_admin
from core.errors import AppError
from models.base_model import BaseModel as Model
from models.params import CallContext

bp = ApiBlueprint("rollouts", __name__, url_prefix="/api", cli_group="rollouts")
Status = Literal["running", "paused", "rolled_back", "promoted", "cancelled"]
ROLLOUT = json_object(
    "{id, name, control, candidate, status (running, paused, rolled_back, promoted, cancelled), routing (whether "
    "calls naming the control are still routed by it), step, percent (the candidate's share now), steps, "
    "min_calls_per_step, min_seconds_per_step, guardrails, primary_metric, non_inferiority_margin, created_at, "
    "step_started_at, ended_at, timeline: [{at, event (started, step, paused, resumed, rolled_back, promoted, "
    "promotion_failed, cancelled), step, percent, details: {checks: [{guardrail, observed, limit, p_value, "
    "verdict}]}}]}")
MOVED: dict[Any, Any] = {200: ROLLOUT, 409: json_object(
    "`illegal_rollout_move`: the rollout's status does not allow it (details.allowed lists what does)")}


class RolloutPath(BaseModel):
    rollout_id: RowId


class RolloutsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status | None = Field(default=None, description="Only rollouts in this status")
    limit: int = Field(default=100, ge=1, le=1000)


def routed_model(name: str | None, context: CallContext) -> tuple[Model, CallContext]:
    """The model a call naming `name` (None: the default) runs on: the control, the candidate model or the model
    running the candidate version of a rollout routing it, split by user (else API key), with the arm's tag on the
    context; otherwise the named model."""
    model = services().registry.require_model(name)
    served, tag = services().rollouts.route(model, context.user_id or context.api_key_id)
    return served, context if tag is None else context.with_tags(tag)


@bp.post("/rollouts", responses={201: json_object("{id}: the rollout started at its first step")})
def create_rollout(body: RolloutSpec) -> tuple[Response, int]:
    """Start moving the control's traffic to the candidate; 409 while a rollout (running, paused, or promoted and
    still routing) routes it. A bad reference is a 400 naming `control` or `candidate`."""
    require_admin("start rollouts: they route every tenant's calls")
    return jsonify({"id": services().rollouts.create(body)}), 201


@bp.get("/rollouts", responses={200: json_object("{rollouts: [rollout without timeline], count}: newest first")})
def list_rollouts(query: RolloutsQuery) -> Response:
    """Rollouts, newest first, optionally of one status."""
    require_admin("list rollouts: they route every tenant's calls")
    rollouts = services().rollouts.list_rollouts(query.status, query.limit)
    return jsonify({"rollouts": rollouts, "count": len(rollouts)})


@bp.get("/rollouts/<int:rollout_id>", responses={200: ROLLOUT})
def get_rollout(path: RolloutPath) -> Response:
    """The rollout's status, current step and timeline."""
    return jsonify(services().rollouts.describe(path.rollout_id))


@bp.post("/rollouts/<int:rollout_id>/pause", responses=MOVED)
def pause_rollout(path: RolloutPath) -> Response:
    """Send every call back to the control and stop advancing; the step is kept. Only a running rollout."""
    require_admin("pause rollouts")
    return jsonify(services().rollouts.pause(path.rollout_id))


@bp.post("/rollouts/<int:rollout_id>/resume", responses=MOVED)
def resume_rollout(path: RolloutPath) -> Response:
    """Route again at the paused step, which starts over: its minimum time and calls count from now. Only a paused
    rollout; users get the arm they had."""
    require_admin("resume rollouts")
    return jsonify(services().rollouts.resume(path.rollout_id))


@bp.post("/rollouts/<int:rollout_id>/cancel", responses=MOVED)
def cancel_rollout(path: RolloutPath) -> Response:
    """End the rollout with every call on the control (status `cancelled`): a running or paused one, or a promoted
    one whose model or group candidate still takes the control's calls. A promoted version serves by itself: roll
    it back through model versions or the prompt's labels instead (409)."""
    require_admin("cancel rollouts")
    return jsonify(services().rollouts.cancel(path.rollout_id))


@bp.cli.command("list")
@click.option("--status", type=click.Choice(get_args(Status)), help="Only rollouts in this status.")
def list_command(status: str | None) -> None:
    """Print the rollouts, newest first, as JSON."""
    _echo(lambda: services().rollouts.list_rollouts(status))


# `flask rollouts <command> ID`: the RolloutManager method each one calls, and its help.
ID_COMMANDS = {
    "show": ("describe", "Print rollout ROLLOUT_ID with its timeline, as JSON."),
    "advance": ("advance", "Take one look at rollout ROLLOUT_ID now: roll back, move on, promote or wait; print the "
                           "result."),
    "pause": ("pause", "Pause rollout ROLLOUT_ID: every call back on the control, the step kept."),
    "resume": ("resume", "Resume paused rollout ROLLOUT_ID; its step starts over."),
    "cancel": ("cancel", "Cancel rollout ROLLOUT_ID: every call back on the control, for good."),
}


def _register_id_command(name: str, method: str, help_text: str) -> None:
    @bp.cli.command(name, help=help_text)
    @click.argument("rollout_id", type=click.IntRange(min=1))
    def command(rollout_id: int) -> None:
        _echo(lambda: getattr(services().rollouts, method)(rollout_id))


for _name, (_method, _help) in ID_COMMANDS.items():
    _register_id_command(_name, _method, _help)


def _echo(action: Callable[[], Any]) -> None:
    try:
        click.echo(json.dumps(action(), indent=2))
    except AppError as exc:
        raise click.ClickException(exc.message) from exc
