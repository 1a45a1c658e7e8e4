"""Service index and health check."""

from __future__ import annotations

from flask import Response, current_app, jsonify
from pydantic import BaseModel, Field

from api.openapi import ApiBlueprint
from api.rate_limits import rate_limit_state
from api.services import services
from storage.database import ping

bp = ApiBlueprint("health", __name__, secured=False)

SERVICE_NAME = "AI Model Manager"
VERSION = "0.1.0"


FEATURES = ["AI Model Integration", "Workflow Management", "Model Comparison", "A/B Testing",
            "Performance Monitoring"]


class IndexResponse(BaseModel):
    message: str
    service: str
    version: str
    features: list[str]
    endpoints: list[str] = Field(description="`METHODS /rule` for every route")


class HealthResponse(BaseModel):
    status: str = Field(description="healthy, degraded (served, with rate limits kept per process) or unhealthy")
    database: str
    rate_limits: str = Field(description="off, ok, or degraded: the shared store is unreachable and every "
                                         "process keeps its own limits until it answers")
    database_backend: str
    models: int
    default_model: str | None
    version: str


@bp.get("/", responses={200: IndexResponse})
def index() -> Response:
    """The service name, version, features (the original's keys) and every route."""
    endpoints = sorted(
        {f"{' '.join(sorted((rule.methods or set()) - {'HEAD', 'OPTIONS'}))} {rule.rule}"
         for rule in current_app.url_map.iter_rules() if rule.endpoint != "static"}
    )
    return jsonify({"message": f"{SERVICE_NAME} API", "service": SERVICE_NAME, "version": VERSION,
                    "features": FEATURES, "endpoints": endpoints})


@bp.get("/health", responses={200: HealthResponse, 503: HealthResponse})
def health() -> tuple[Response, int]:
    """Database and rate-limit store reachability, the registered models; 503 when the database is unreachable."""
    svc = services()
    database_ok = ping(svc.engine)
    rate_limits = rate_limit_state(current_app)
    body = {
        "status": "unhealthy" if not database_ok else "degraded" if rate_limits == "degraded" else "healthy",
        "database": "ok" if database_ok else "unreachable",
        "rate_limits": rate_limits,
        "database_backend": svc.engine.dialect.name,
        "models": len(svc.registry.list_models()),
        "default_model": svc.registry.default_model_name,
        "version": VERSION,
    }
    return jsonify(body), 200 if database_ok else 503
