"""Rollouts over HTTP and the CLI, and the one place where a call naming a model is routed by a running rollout.

`flask rollouts show ID` prints a rollout and its timeline; `flask rollouts advance ID` takes one look now.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click
from flask import Response, jsonify
from pydantic import BaseModel

from ab_testing.rollout_spec import RolloutSpec
from api.openapi import ApiBlueprint, RowId, json_object
from api.services import services
from api.tenancy import require_admin
from core.errors import AppError
from models.base_model import BaseModel as Model
from models.params import CallContext

bp = ApiBlueprint("rollouts", __name__, url_prefix="/api", cli_group="rollouts")
ROLLOUT = json_object("{id, name, control, candidate, status (running, rolled_back, promoted), step, percent, steps, "
                      "guardrails, timeline: [{at, event, step, percent, details}]}")


class RolloutPath(BaseModel):
    rollout_id: RowId


def routed_model(name: str | None, context: CallContext) -> tuple[Model, CallContext]:
    """The model a call naming `name` (None: the default) runs on: the candidate or the control of a rollout
    routing it, split by user (else API key), with the arm's tag on the context; otherwise the named model."""
    registry = services().registry
    model = registry.require_model(name)
    served, tag = services().rollouts.route(model.name, context.user_id or context.api_key_id)
    if tag is None:
        return model, context
    return registry.require_model(served), context.with_tags(tag)


@bp.post("/rollouts", responses={201: json_object("{id}: the rollout started at its first step")})
def create_rollout(body: RolloutSpec) -> tuple[Response, int]:
    """Start moving the control's traffic to the candidate; 409 while a rollout (running or promoted) routes it."""
    require_admin("start rollouts: they route every tenant's calls")
    return jsonify({"id": services().rollouts.create(body)}), 201


@bp.get("/rollouts/<int:rollout_id>", responses={200: ROLLOUT})
def get_rollout(path: RolloutPath) -> Response:
    """The rollout's status, current step and timeline."""
    return jsonify(services().rollouts.describe(path.rollout_id))


@bp.cli.command("show")
@click.argument("rollout_id", type=click.IntRange(min=1))
def show(rollout_id: int) -> None:
    """Print rollout ROLLOUT_ID with its timeline, as JSON."""
    _echo(lambda: services().rollouts.describe(rollout_id))


@bp.cli.command("advance")
@click.argument("rollout_id", type=click.IntRange(min=1))
def advance(rollout_id: int) -> None:
    """Take one look at rollout ROLLOUT_ID now: roll back, move on, promote or wait; print the result."""
    _echo(lambda: services().rollouts.advance(rollout_id))


def _echo(action: Callable[[], dict[str, Any]]) -> None:
    try:
        click.echo(json.dumps(action(), indent=2))
    except AppError as exc:
        raise click.ClickException(exc.message) from exc
