"""Model versions over HTTP and the `flask models ...` commands: edit a model's configuration as a new version,
list versions, promote them through the stages, roll back, and compare versions' metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, TypeVar, get_args

import click
from flask import Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from api.monitoring import RangeQuery
from api.openapi import ApiBlueprint, json_object
from api.services import services
from api.tenancy import require_admin
from core.errors import AppError
from models.base_model import BaseModel as Model
from models.version_store import VersionRow
from monitoring.version_metrics import version_metrics

T = TypeVar("T")
bp = ApiBlueprint("model_versions", __name__, url_prefix="/api", cli_group="models")

Stage = Literal["development", "staging", "production", "deprecated", "archived"]
VERSION = json_object("The version: model, version, stage, config_hash, configuration, created_at, created_by, "
                      "restores, promoted_at")


class ModelPath(BaseModel):
    name: str = Field(max_length=200)


class VersionPath(ModelPath):
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")


class ModelPatch(BaseModel):
    """What to change; anything left out keeps its current value. `defaults` and `pricing` merge key by key
    (a null default is removed); `system: null` removes the system prompt."""

    model_config = ConfigDict(extra="forbid")

    defaults: dict[str, Any] | None = Field(default=None, description="Generation parameters, e.g. temperature")
    system: str | None = Field(default=None, max_length=100_000)
    pricing: dict[str, Any] | None = Field(default=None, description="USD per million tokens, e.g. "
                                                                     "input_per_million")
    display_name: str | None = Field(default=None, min_length=1, max_length=200)


class PromoteBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: Stage


class VersionMetricsQuery(RangeQuery):
    model: str = Field(max_length=200)


def _model(name: str) -> Model:
    return services().registry.require_model(name)


def _cli(action: Callable[[], T]) -> T:
    """Run `action`, its refusal (unknown model or version, an illegal move) as the command's error message."""
    try:
        return action()
    except AppError as exc:
        raise click.ClickException(exc.message) from None


def _answer(row: VersionRow, status: int = 200) -> tuple[Response, int]:
    return jsonify({"status": "success", "version": row.to_dict()}), status


@bp.patch("/models/<name>", responses={201: VERSION})
def patch_model(path: ModelPath, body: ModelPatch) -> tuple[Response, int]:
    """A new version in `development` with the changes; it serves once promoted to production."""
    require_admin("change model versions")
    changes = body.model_dump(include=body.model_fields_set)
    return _answer(services().registry.versions.patch(_model(path.name), changes, created_by="api"), 201)


@bp.get("/models/<name>/versions", responses={200: json_object("{model, serving, versions}: oldest first")})
def list_versions(path: ModelPath) -> Response:
    """Every version of a model and the one it serves."""
    model = _model(path.name)
    rows = services().registry.versions.history(model.name)
    return jsonify({"model": model.name, "serving": model.version, "versions": [row.to_dict() for row in rows]})


@bp.post("/models/<name>/versions/<version>/promote", responses={200: VERSION})
def promote(path: VersionPath, body: PromoteBody) -> tuple[Response, int]:
    """Move a version to a stage; into production it serves, and the previous production version is deprecated."""
    require_admin("change model versions")
    return _answer(services().registry.versions.promote(_model(path.name), path.version, body.stage))


@bp.post("/models/<name>/rollback", responses={201: VERSION})
def rollback(path: ModelPath) -> tuple[Response, int]:
    """Serve the previous production version's configuration again, recorded as a new version."""
    require_admin("change model versions")
    return _answer(services().registry.versions.rollback(_model(path.name)), 201)


@bp.get("/metrics/versions", responses={200: json_object("{model, versions}: figures per version")})
def metrics_by_version(query: VersionMetricsQuery) -> Response:
    """Requests, error rate, latency, tokens and cost per version of one model (the last 7 days by default)."""
    model = _model(query.model).name
    span = query.span("7d")
    return jsonify({"model": model, **span.to_dict(),
                    "versions": version_metrics(services().engine, model, span.since, span.until)})


@bp.cli.command("versions")
@click.argument("name")
def cli_versions(name: str) -> None:
    """List a model's versions, oldest first; `*` marks the serving one."""
    model = _cli(lambda: _model(name))
    for row in services().registry.versions.history(model.name):
        mark = "*" if row.version == model.version else " "
        restores = f" (restores {row.restores})" if row.restores else ""
        click.echo(f"{mark} {row.version:<10} {row.stage:<12} {row.config_hash[:12]}  {row.created_at:%Y-%m-%d %H:%M}"
                   f"  {row.created_by}{restores}")


@bp.cli.command("promote")
@click.argument("name")
@click.argument("version")
@click.argument("stage", type=click.Choice(get_args(Stage)))
def cli_promote(name: str, version: str, stage: str) -> None:
    """Move VERSION of NAME to STAGE (production: it serves)."""
    row = _cli(lambda: services().registry.versions.promote(_model(name), version, stage))
    click.echo(f"{row.model} {row.version} is now {row.stage}")


@bp.cli.command("rollback")
@click.argument("name")
def cli_rollback(name: str) -> None:
    """Serve NAME's previous production configuration again (recorded as a new version)."""
    row = _cli(lambda: services().registry.versions.rollback(_model(name)))
    click.echo(f"{row.model} rolled back to {row.restores}'s configuration as {row.version} ({row.config_hash[:12]})")
