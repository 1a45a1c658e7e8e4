"""The response cache over HTTP: what it did and holds, and clearing it (by model, by key, or all)."""

from __future__ import annotations

from flask import Response, g, jsonify
from pydantic import BaseModel, Field

from api.errors import ApiError
from api.openapi import ApiBlueprint, json_object
from api.services import services
from monitoring.cache_report import cache_report

bp = ApiBlueprint("cache", __name__, url_prefix="/api")


class ClearQuery(BaseModel):
    model: str | None = Field(default=None, max_length=200, description="Only this model's or group's entries")
    key: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$", description="Only this entry")


@bp.get("/cache", responses={200: json_object("hits, calls, hit_rate, cost_saved (USD), entries, bytes")})
def report() -> Response:
    """Hit rate and saved cost over every recorded call, and what the cache holds now."""
    svc = services()
    return jsonify(cache_report(svc.engine, svc.registry.call_path.cache))


@bp.delete("/cache", responses={200: json_object("{deleted}: entries removed")})
def clear(query: ClearQuery) -> Response:
    """Remove a model's entries, one entry, or (with neither) every entry; an admin key's task where keys exist."""
    if g.get("api_key_id") and not g.get("api_key_admin"):
        raise ApiError(403, "forbidden", "Only an admin key may clear the response cache")
    deleted = services().registry.call_path.cache.clear(model=query.model, key=query.key)
    return jsonify({"deleted": deleted})
