"""Service index and health check."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from api.wiring import services
from storage.database import ping

bp = Blueprint("health", __name__)

SERVICE_NAME = "AI Model Manager"
VERSION = "0.1.0"


@bp.get("/")
def index():  # noqa: ANN201
    endpoints = sorted(
        {f"{' '.join(sorted(rule.methods - {'HEAD', 'OPTIONS'}))} {rule.rule}"
         for rule in current_app.url_map.iter_rules() if rule.endpoint != "static"}
    )
    return jsonify({"service": SERVICE_NAME, "version": VERSION, "endpoints": endpoints})


@bp.get("/health")
def health():  # noqa: ANN201
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
