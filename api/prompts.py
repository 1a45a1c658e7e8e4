"""The prompt registry over HTTP and the CLI: push versions, move labels, read a prompt and its per-version metrics.

`flask prompts push FILE.yaml` pushes one prompt or a list of them, each as a new version only when its content
changed; `flask prompts label NAME VERSION LABEL` moves a label.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

import click
import yaml
from flask import Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from api.openapi import ApiBlueprint, json_object
from api.services import services
from api.tenancy import require_admin
from core.errors import validation_fields
from models.prompts.spec import LABEL, PROMPT_NAME, PromptSpec
from storage.clock import utcnow

bp = ApiBlueprint("prompts", __name__, url_prefix="/api", cli_group="prompts")
DEFAULT_WINDOW = timedelta(hours=24)


class PromptPath(BaseModel):
    name: str = Field(pattern=PROMPT_NAME)


class LabelPath(PromptPath):
    label: str = Field(pattern=LABEL)


class LabelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, strict=True)


class MetricsQuery(BaseModel):
    """ISO `since`/`until` (UTC when no offset is given); by default the last 24 hours."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = None
    until: datetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _naive_utc(cls, value: datetime | None) -> datetime | None:
        return value.astimezone(UTC).replace(tzinfo=None) if value is not None and value.tzinfo else value

    @model_validator(mode="after")
    def _ordered(self) -> MetricsQuery:
        if self.since and self.until and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


@bp.post("/prompts", responses={201: json_object("{name, version}: the version created")})
def push_prompt(body: PromptSpec) -> tuple[Response, int]:
    """Add a version: version 1 of a new name, else the next number. Versions never change once created."""
    require_admin("push prompt versions")
    version, _ = services().prompts.push(body)
    return jsonify({"name": body.name, "version": version}), 201


@bp.get("/prompts/<name>", responses={200: json_object("{name, versions, labels}")})
def get_prompt(path: PromptPath) -> Response:
    """Every version (oldest first) and where each label points."""
    return jsonify(services().prompts.describe(path.name))


@bp.put("/prompts/<name>/labels/<label>", responses={200: json_object("{name, label, version}")})
def set_label(path: LabelPath, body: LabelBody) -> Response:
    """Point a label (`production`, `staging`, any name) at a version, atomically: calls naming the label render
    the old version or the new one, never neither."""
    require_admin("move prompt labels")
    services().prompts.set_label(path.name, path.label, body.version)
    return jsonify({"name": path.name, "label": path.label, "version": body.version})


@bp.get("/prompts/<name>/metrics", responses={200: json_object("{name, since, until, versions: [...]}")})
def prompt_metrics(path: PromptPath, query: MetricsQuery) -> Response:
    """Per version: requests, errors, error rate, mean latency, tokens and cost of the calls in the window."""
    until = query.until or utcnow()
    since = query.since or until - DEFAULT_WINDOW
    versions = services().prompts.metrics(path.name, since, until)
    return jsonify({"name": path.name, "since": since.isoformat() + "Z", "until": until.isoformat() + "Z",
                    "versions": versions})


@bp.cli.command("push")
@click.argument("file", type=click.File())
def push(file: TextIO) -> None:
    """Push the prompts of a YAML file (one mapping, or a list); unchanged content adds no version."""
    registry = services().prompts
    for spec in _specs(yaml.safe_load(file)):
        version, created = registry.push(spec, if_changed=True)
        click.echo(f"{spec.name}: {'created' if created else 'unchanged at'} version {version}")


@bp.cli.command("label")
@click.argument("name")
@click.argument("version", type=click.IntRange(min=1))
@click.argument("label")
def label(name: str, version: int, label: str) -> None:
    """Point LABEL of prompt NAME at VERSION."""
    try:
        LabelPath(name=name, label=label)
        services().prompts.set_label(name, label, version)
    except ValidationError as exc:
        raise click.ClickException("; ".join(f"{f['field']}: {f['reason']}" for f in validation_fields(exc))) from None
    except LookupError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name}: {label} -> version {version}")


def _specs(document: Any) -> list[PromptSpec]:
    """Every prompt of the file, all validated before any is pushed; a mistake names the entry and field."""
    entries = document if isinstance(document, list) else [document]
    specs = []
    for index, entry in enumerate(entries):
        try:
            specs.append(PromptSpec.model_validate(entry))
        except ValidationError as exc:
            raise click.ClickException("; ".join(f"prompt {index}: {f['field']}: {f['reason']}"
                                                 for f in validation_fields(exc))) from None
    return specs
