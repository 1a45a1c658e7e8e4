"""Service index and health check."""

from __future__ import annotations

from flask import Response, current_app, jsonify
from pydantic import BaseModel, Field

from api.openapi import ApiBlueprint
from api.services import services
from storage.database import ping

bp = ApiBlueprint("health", __name__, secured=False)

SERVICE_NAME = "AI Model Manager"
VERSION = "0.1.0"


class IndexResponse(BaseModel):
    service: str
    version: str
    endpoints: list[str] = Field(description="`METHODS /rule` for every route")


class HealthResponse(BaseModel):
    status: str = Field(description="healthy or unhealthy")
    database: str
    database_backend: str
    models: int
    default_model: str | None
    version: str


@bp.get("/", responses={200: IndexResponse})
def index() -> Response:
    """The service name, version and every route."""
    endpoints = sorted(
        {f"{' '.join(sorted((rule.methods or set()) - {'HEAD', 'OPTIONS'}))} {rule.rule}"
         for rule in current_app.url_map.iter_rules() if rule.endpoint != "static"}
    )
    return jsonify({"service": SERVICE_NAME, "version": VERSION, "endpoints": endpoints})


@bp.get("/health", responses={200: HealthResponse, 503: HealthResponse})
def health() -> tuple[Response, int]:
    """Database reachability and the registered models; 503 when the database is unreachable."""
    svc = services()
    database_ok = ping(svc.engine)
    body = {
        "status": "healthy" if database_ok else "unhealthy",
        "database": "ok" if database_ok else "unreachable",
        "database_backend": svc.engine.dialect.name,
        "models": len(svc.registry.list_models()),
        "default_model": svc.registry.default_model_name,
        "version": VERSION,
    }
    return jsonify(body), 200 if database_ok else 503
