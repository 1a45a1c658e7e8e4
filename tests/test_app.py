"""The app factory: health, index, JSON errors, request ids, one access-log line per request, CLI."""

import json
import logging

from sqlalchemy import text


def test_health_reports_database_ok(client):
    response = client.get("/health")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "healthy" and body["database"] == "ok"


def test_health_is_503_when_database_is_unreachable(client, svc, monkeypatch):
    def broken_connect(*args, **kwargs):
        raise RuntimeError("database gone")

    monkeypatch.setattr(svc.engine, "connect", broken_connect)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.get_json()["database"] == "unreachable"


def test_index_lists_service_and_endpoints(client):
    body = client.get("/").get_json()
    assert body["service"] == "AI Model Manager" and body["version"]
    assert "POST /api/generate" in body["endpoints"] and "GET /health" in body["endpoints"]


def test_unknown_path_is_json_404(client):
    response = client.get("/does-not-exist")
    assert response.status_code == 404 and response.is_json
    assert response.get_json()["error"]["code"] == "not_found"


def test_wrong_method_is_json_405_with_allow_header(client):
    response = client.delete("/health")
    assert response.status_code == 405 and response.is_json
    assert response.get_json()["error"]["code"] == "method_not_allowed"
    assert "GET" in response.headers["Allow"]


def test_oversized_body_is_json_413(client, app):
    big = "x" * (app.config["MAX_CONTENT_LENGTH"] + 1)
    response = client.post("/api/generate", data=big, content_type="application/json")
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_unexpected_exception_is_json_500_without_details(app, client, svc, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(svc.request_log, "list", explode)
    response = client.get("/api/requests")
    assert response.status_code == 500
    assert response.get_json() == {"error": {"code": "internal_error", "message": "An internal error occurred"}}


def test_request_id_is_generated_or_echoed(client):
    generated = client.get("/health").headers["X-Request-ID"]
    assert len(generated) == 36
    assert client.get("/health", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"] == "abc-123"
    assert client.get("/health", headers={"X-Request-ID": "bad id"}).headers["X-Request-ID"] != "bad id"


def test_one_structured_log_line_per_request(client, caplog):
    with caplog.at_level(logging.INFO, logger="api.access"):
        client.get("/health", headers={"X-Request-ID": "req-1"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "api.access"]
    assert len(lines) == 1
    assert lines[0] | {"duration_ms": 0} == {"request_id": "req-1", "key_id": None, "method": "GET",
                                              "path": "/health", "status": 200, "duration_ms": 0}


def test_cli_db_upgrade_and_current(runner, svc):
    result = runner.invoke(args=["db", "upgrade"])
    assert result.exit_code == 0 and "revision" in result.output
    with svc.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() >= 1
    assert runner.invoke(args=["db", "current"]).output.strip()
