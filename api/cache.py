"""The response cache over HTTP: what it did and holds, clearing it (by model, by key, or all), and warming it
(`flask cache warm FILE`, or a background job: POST /api/cache/warm)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TextIO

import click
from flask import Flask, Response, g, jsonify
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.generate import GenerateRequest
from api.openapi import ApiBlueprint, json_object
from api.services import services
from api.tenancy import require_admin
from core.errors import validation_fields
from models.messages import GenerationRequest
from models.params import CallContext
from monitoring.cache_report import cache_report
from storage.jobs.runner import JobContext, JobKind

bp = ApiBlueprint("cache", __name__, url_prefix="/api", cli_group="cache")
WARM_JOB = "cache_warm"


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


class WarmBody(BaseModel):
    """What to warm the cache with: /api/generate request bodies, each called once unless already cached."""

    model_config = ConfigDict(extra="forbid")

    requests: list[GenerateRequest] = Field(min_length=1, max_length=10_000)


@bp.post("/cache/warm", responses={202: json_object("{job_id}: poll GET /api/jobs/<job_id> for progress and the "
                                                    "counts (already cached, called and kept, not cacheable)")})
def warm_in_background(body: WarmBody) -> tuple[Response, int]:
    """Fill the cache in a background job, for the calling key (a policy scoped by key keeps answers per key)."""
    for request in body.requests:  # an unknown model is a 404 now, not a failed job later
        services().registry.require_model(request.model)
    payload = {"requests": [request.model_dump(mode="json", exclude_unset=True) for request in body.requests],
               "key_id": g.get("api_key_id")}
    job_id = services().jobs.runner.submit(WARM_JOB, payload, api_key_id=g.get("api_key_id"))
    return jsonify({"job_id": job_id}), 202


@bp.cli.command("warm")
@click.argument("requests", type=click.File())
@click.option("--key-id", help="Keep the answers for this API key's calls (policies scoped by key); default: no key")
def warm(requests: TextIO, key_id: str | None) -> None:
    """Fill the cache from a JSONL file of /api/generate request bodies: each request not cached yet is called
    once and its answer kept; requests their model's policy does not cache are reported, not called."""
    bodies = []
    for number, line in enumerate(requests, 1):
        if not line.strip():
            continue
        try:
            bodies.append(GenerateRequest.model_validate_json(line))
        except ValidationError as exc:
            problems = "; ".join(f"{f['field']}: {f['reason']}" for f in validation_fields(exc))
            raise click.ClickException(f"line {number}: {problems}") from None
    counts = warm_cache(bodies, key_id)
    click.echo(", ".join(f"{count} {what}" for what, count in counts.items()))


def warm_cache(bodies: Sequence[GenerateRequest], key_id: str | None,
               progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
    """Call each request whose model's policy caches it and that is not cached yet; counts of what happened."""
    registry = services().registry
    counts = {"already cached": 0, "called and kept": 0, "not cacheable": 0}
    for done, body in enumerate(bodies, 1):
        model = registry.require_model(body.model)
        request = GenerationRequest.build(body.prompt, messages=body.messages, system=body.system,
                                          params=body.only_generation())
        policy = registry.call_path.cache.policy(model)
        if policy is None or not policy.admits(request):
            counts["not cacheable"] += 1
        else:
            context = CallContext(user_id=body.user_id, api_key_id=key_id, cache="on", cache_ttl=body.cache_ttl)
            counts["already cached" if model.run(request, context).result.cache else "called and kept"] += 1
        if progress is not None:
            progress(done, len(bodies))
    return counts


def register_cache_warm_jobs(app: Flask) -> None:
    """Make `cache_warm` jobs runnable in this app's processes (web and `flask worker`)."""

    def run(context: JobContext) -> dict[str, int]:
        with app.app_context():
            bodies = [GenerateRequest.model_validate(body) for body in context.payload["requests"]]

            def progress(done: int, total: int) -> None:
                context.progress(done, total)
                context.check_cancelled()

            return warm_cache(bodies, context.payload.get("key_id"), progress)

    services(app).jobs.runner.register(WARM_JOB, JobKind(run, max_attempts=1))
