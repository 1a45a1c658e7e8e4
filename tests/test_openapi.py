"""The generated OpenAPI document, Swagger UI served offline, and validation answers from the declared models."""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from core.settings import Settings

DOCUMENTED_PREFIXES = ("/api/", "/health", "/metrics")


def _openapi_path(rule: str) -> str:
    """Flask's `/x/<int:id>` as OpenAPI's `/x/{id}`."""
    return re.sub(r"<(?:[^<>:]+:)?([^<>:]+)>", r"{\1}", rule)


def test_document_lists_every_api_route_with_its_methods(app, client):
    paths = client.get("/openapi.json").get_json()["paths"]
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(DOCUMENTED_PREFIXES) or rule.rule == "/":
            documented = {method.upper() for method in paths[_openapi_path(rule.rule)]}
            assert rule.methods - {"HEAD", "OPTIONS"} <= documented, rule.rule


def test_document_is_generated_from_the_request_and_response_models(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "AI Model Manager"
    generate = spec["paths"]["/api/generate"]["post"]
    body_ref = generate["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = spec["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert "required" not in body and body["additionalProperties"] is False  # prompt or messages
    assert {"prompt", "messages", "top_p", "stop", "seed", "response_format"} <= body["properties"].keys()
    temperature = next(option for option in body["properties"]["temperature"]["anyOf"] if option["type"] == "number")
    assert (temperature["minimum"], temperature["maximum"]) == (0, 2)
    assert set(generate["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    error_ref = generate["responses"]["400"]["content"]["application/json"]["schema"]["$ref"]
    assert error_ref.endswith("/ErrorResponse") and {"4XX", "5XX"} <= generate["responses"].keys()
    path_parameter = spec["paths"]["/api/budgets/{budget_id}"]["get"]["parameters"][0]
    assert (path_parameter["in"], path_parameter["schema"]["type"]) == ("path", "integer")


def test_api_key_schemes_are_declared_for_api_operations_only(client):
    spec = client.get("/openapi.json").get_json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearerAuth"]["scheme"] == "bearer"
    assert (schemes["apiKeyHeader"]["in"], schemes["apiKeyHeader"]["name"]) == ("header", "X-API-Key")
    assert {"bearerAuth": []} in spec["paths"]["/api/generate"]["post"]["security"]
    assert "security" not in spec["paths"]["/health"]["get"]


def test_docs_serve_swagger_ui_from_local_assets(client):
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    assert any(asset.endswith("swagger-ui.css") for asset in assets)
    assert '"/openapi.json"' in html
    for asset in assets:
        assert asset.startswith("/docs/assets/"), asset  # never a CDN: the machine may be offline
        response = client.get(asset)
        assert response.status_code == 200 and len(response.data) > 100, asset
        response.close()


def test_docs_and_document_stay_public_when_keys_are_required(tmp_path):
    settings = Settings.from_env(environ={}, env_file=None,
                                 overrides={"DATABASE_URL": f"sqlite:///{tmp_path / 'keys.db'}", "API_KEYS": "k"})
    client = create_app(settings).test_client()
    assert client.get("/docs").status_code == 200 and client.get("/openapi.json").status_code == 200
    assert client.get("/api/models").status_code == 401


@pytest.mark.parametrize(("method", "url", "body", "field"), [
    ("get", "/api/requests?limit=0", None, "limit"),
    ("get", "/api/requests?limit=ten", None, "limit"),
    ("get", "/api/metrics?since=50", None, "since"),
    ("get", "/api/alerts?surprise=1", None, "surprise"),
    ("get", f"/api/comparisons/{2**70}", None, "comparison_id"),
    ("get", "/api/budgets/0", None, "budget_id"),
    ("put", "/api/experiment/1/weights", {"weights": {"A": -1}}, "weights.A"),
    ("post", "/api/experiment", {"name": "e", "variants": [{"name": "A", "model": "m"}, {"name": "B", "model": "m"}],
                                 "min_sample_size": 2**70}, "min_sample_size"),
    ("post", "/api/experiment", {"name": "e", "variant_a": "m"}, "variant_b"),
    ("post", "/api/experiment/1/record", {"outcomes": [{"variant": "A"}]}, "outcomes.0.success"),
    ("post", "/api/compare", {"models": [], "prompt": "x"}, "models"),
    ("patch", "/api/budgets/1", {"limit_usd": "lots"}, "limit_usd"),
])
def test_every_kind_of_input_is_validated_naming_the_field(client, method, url, body, field):
    response = getattr(client, method)(url, json=body)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert field in [f["field"] for f in error["details"]["fields"]]


def test_bodies_must_be_json_objects_on_every_body_endpoint(client):
    assert client.put("/api/experiment/1/weights", data="x=1").status_code == 415
    assert client.post("/api/budgets", data="{", content_type="application/json").get_json()["error"]["code"] \
        == "invalid_json"
    assert client.post("/api/workflows", json=[1]).status_code == 400
