"""The response cache over HTTP: what it did and holds, and clearing it (by model, by key, or all)."""

from __future__ import annotations

from typing import TextIO

import click
from flask import Response, jsonify
from pydantic import BaseModel, Field, ValidationError

from api.generate import GenerateRequest
from api.openapi import ApiBlueprint, json_object
from api.services import services
from api.tenancy import require_admin
from core.errors import validation_fields
from models.messages import GenerationRequest
from models.params import CallContext
from monitoring.cache_report import cache_report

bp = ApiBlueprint("cache", __name__, url_prefix="/api", cli_group="cache")


class ClearQuery(BaseModel):
    model: str | None = Field(default=None, max_length=200, description="Only this model's or group's entries")
    key: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="Only this entry")


@bp.get("/cache", responses={200: json_object(
    "hits, calls, hit_rate, cost_saved (USD), entries, bytes, semantic_entries (vectors kept)")})
def report() -> Response:
    """Hit rate and saved cost over every recorded chat call, and what the cache holds now."""
    svc = services()
    embedding_only = [name for name, model in svc.registry.models.items() if not model.capabilities.chat]
    return jsonify(cache_report(svc.engine, svc.registry.call_path.cache, embedding_only))


@bp.delete("/cache", responses={200: json_object("{deleted}: entries removed")})
def clear(query: ClearQuery) -> Response:
    """Remove a model's entries, one entry, or (with neither) every entry; an admin key's task where keys exist."""
    require_admin("clear the response cache")
    deleted = services().registry.call_path.cache.clear(model=query.model, key=query.key)
    return jsonify({"deleted": deleted})


@bp.cli.command("warm")
@click.argument("requests", type=click.File())
@click.option("--key-id", help="Keep the answers for this API key's calls (policies scoped by key); default: no key")
def warm(requests: TextIO, key_id: str | None) -> None:
    """Fill the cache from a JSONL file of /api/generate request bodies: each request not cached yet is called
    once and its answer kept; requests their model's policy does not cache are reported, not called."""
    registry = services().registry
    counts = {"already cached": 0, "called and kept": 0, "not cacheable": 0}
    for number, line in enumerate(requests, 1):
        if not line.strip():
            continue
        try:
            body = GenerateRequest.model_validate_json(line)
        except ValidationError as exc:
            problems = "; ".join(f"{f['field']}: {f['reason']}" for f in validation_fields(exc))
            raise click.ClickException(f"line {number}: {problems}") from None
        model = registry.require_model(body.model)
        request = GenerationRequest.build(body.prompt, messages=body.messages, system=body.system,
                                          params=body.only_generation())
        policy = registry.call_path.cache.policy(model)
        if policy is None or not policy.admits(request):
            counts["not cacheable"] += 1
            continue
        context = CallContext(user_id=body.user_id, api_key_id=key_id, cache="on", cache_ttl=body.cache_ttl)
        result = model.run(request, context).result
        counts["already cached" if result.cache else "called and kept"] += 1
    click.echo(", ".join(f"{count} {what}" for what, count in counts.items()))
