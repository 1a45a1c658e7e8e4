"""Key management over HTTP and the CLI: admin only, the key shown once and stored hashed, validated, expiring."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta

import pytest
from flask import Flask, g, jsonify
from pydantic import SecretStr
from sqlalchemy import text

from api.app import create_app
from api.auth import Authenticator, create_key, register_auth
from api.errors import register_error_handlers
from api.key_store import ApiKeyStore, KeyPolicy
from api.services import api_keys, services
from storage.clock import utcnow
from tests.fakes import FakeModel

ADMIN = "bootstrap-admin-key"
FUTURE = "2999-01-01T00:00:00Z"


@pytest.fixture
def keyed_app(settings):
    app = create_app(settings.model_copy(update={"api_keys": SecretStr(ADMIN)}), {"TESTING": True})
    services(app).registry.register_model(FakeModel(), aliases=("fake",))
    return app


def _as(client, key: str):
    return lambda method, path, **kw: client.open(path, method=method, headers={"X-API-Key": key}, **kw)


@pytest.fixture
def admin(keyed_app):
    return _as(keyed_app.test_client(), ADMIN)


def test_the_key_is_shown_once_and_stored_only_as_its_hash(keyed_app, admin):
    body = {"name": "team-a", "models": ["fake"], "expires_at": FUTURE, "rpm": 5, "tpm": 1000,
            "metadata": {"tags": ["team-a"], "owner": "ana"}}
    created = admin("POST", "/api/keys", json=body)
    assert created.status_code == 201
    record = created.get_json()
    key, key_id = record["key"], record["id"]
    assert key.startswith("amm_") and "key_hash" not in record
    assert record["models"] == ["fake-model"]  # the alias is stored as the model it names
    assert record["expires_at"] == "2999-01-01T00:00:00Z" and record["status"] == "active"
    assert (record["rpm"], record["tpm"], record["metadata"]) == (5, 1000, {"tags": ["team-a"], "owner": "ana"})

    listed = admin("GET", "/api/keys").get_json()
    got = admin("GET", f"/api/keys/{key_id}").get_json()
    assert [k["id"] for k in listed["keys"]] == [key_id] and got["name"] == "team-a"
    for answer in (listed, got):
        assert key not in json.dumps(answer) and "key_hash" not in json.dumps(answer) and "key" not in got
    with services(keyed_app).engine.connect() as conn:
        (stored,) = conn.execute(text("SELECT * FROM api_keys")).mappings().all()
    assert key not in " ".join(str(value) for value in stored.values())
    assert stored["key_hash"] == hashlib.sha256(key.encode()).hexdigest()
    assert _as(keyed_app.test_client(), key)("GET", "/api/requests").status_code == 200


def test_only_admin_keys_manage_keys(keyed_app, admin):
    client = keyed_app.test_client()
    member = _as(client, admin("POST", "/api/keys", json={"name": "member"}).get_json()["key"])
    ops = _as(client, admin("POST", "/api/keys", json={"name": "ops", "admin": True}).get_json()["key"])
    for method, path, body in (("POST", "/api/keys", {"name": "x"}), ("GET", "/api/keys", None),
                               ("GET", "/api/keys/key_x", None), ("DELETE", "/api/keys/key_x", None)):
        refused = member(method, path, json=body)
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "forbidden"
    made_by_ops = ops("POST", "/api/keys", json={"name": "by-ops"})  # a key created as admin manages keys too
    assert made_by_ops.status_code == 201
    assert ops("GET", "/api/keys").get_json()["count"] == 3


def test_with_no_key_configured_keys_are_bootstrapped_from_the_cli(client, runner):
    refused = client.post("/api/keys", json={"name": "first"})
    assert refused.status_code == 403 and "keys create" in refused.get_json()["error"]["message"]
    assert client.get("/api/keys").status_code == 403
    created = runner.invoke(args=["keys", "create", "first", "--admin"])
    key = created.output.strip().splitlines()[-1]
    assert client.post("/api/keys", json={"name": "second"}, headers={"X-API-Key": key}).status_code == 201


@pytest.mark.parametrize(("body", "field"), [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": "k", "colour": "red"}, "colour"),
    ({"name": "k", "admin": "yes"}, "admin"),
    ({"name": "k", "models": []}, "models"),
    ({"name": "k", "models": [""]}, "models.0"),
    ({"name": "k", "models": "fake"}, "models"),
    ({"name": "k", "rpm": 0}, "rpm"),
    ({"name": "k", "rpm": True}, "rpm"),
    ({"name": "k", "tpm": -5}, "tpm"),
    ({"name": "k", "tpm": "100"}, "tpm"),
    ({"name": "k", "tpm": 1.5}, "tpm"),
    ({"name": "k", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "k", "expires_at": "next tuesday"}, "expires_at"),
    ({"name": "k", "expires_at": 4102444800}, "expires_at"),
    ({"name": "k", "metadata": ["tag"]}, "metadata"),
    ({"name": "k", "metadata": {"tags": "a,b"}}, "metadata.tags"),
    ({"name": "k", "metadata": {"tags": ["ok", ""]}}, "metadata.tags.1"),
    ({"name": "k", "metadata": {"tags": ["t"] * 51}}, "metadata.tags"),
])
def test_invalid_keys_are_refused_naming_the_field(admin, body, field):
    response = admin("POST", "/api/keys", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and field in [f["field"] for f in error["details"]["fields"]]


def test_an_offset_expiry_is_stored_in_utc(admin):
    record = admin("POST", "/api/keys", json={"name": "k", "expires_at": "2999-01-01T02:00:00+02:00"}).get_json()
    assert record["expires_at"] == "2999-01-01T00:00:00Z"


def test_revoking_refuses_the_key_and_keeps_its_record(keyed_app, admin):
    created = admin("POST", "/api/keys", json={"name": "gone"}).get_json()
    key = _as(keyed_app.test_client(), created["key"])
    assert key("GET", "/api/requests").status_code == 200
    revoked = admin("DELETE", f"/api/keys/{created['id']}")
    assert revoked.status_code == 200 and revoked.get_json()["status"] == "revoked"
    refused = key("GET", "/api/requests")
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_api_key"
    assert admin("GET", f"/api/keys/{created['id']}").get_json()["revoked_at"] is not None
    for method in ("GET", "DELETE"):
        missing = admin(method, "/api/keys/key_000000000000")
        assert missing.status_code == 404 and missing.get_json()["error"]["code"] == "api_key_not_found"


def test_an_expired_key_is_refused_with_its_own_code(keyed_app, admin):
    store = api_keys(keyed_app)
    key_id, key = create_key(store, "old", policy=KeyPolicy(expires_at=utcnow() - timedelta(seconds=1)))
    refused = _as(keyed_app.test_client(), key)("GET", "/api/requests")
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "api_key_expired"
    assert admin("GET", f"/api/keys/{key_id}").get_json()["status"] == "expired"


def test_a_key_is_refused_from_its_expiry_on(settings, svc):
    now = datetime(2030, 1, 1, 12, 0)
    store = ApiKeyStore(svc.engine)
    _, key = create_key(store, "short-lived", policy=KeyPolicy(expires_at=now + timedelta(minutes=5)))
    app = Flask(__name__)
    authenticator = Authenticator(settings, store, clock=lambda: now)
    register_error_handlers(app)
    register_auth(app, authenticator)
    app.add_url_rule("/api/me", "me", lambda: jsonify(g.api_key_id))
    client = app.test_client()
    assert client.get("/api/me", headers={"X-API-Key": key}).status_code == 200
    authenticator.clock = lambda: now + timedelta(minutes=5)
    expired = client.get("/api/me", headers={"X-API-Key": key})
    assert expired.status_code == 401 and expired.get_json()["error"] == {
        "code": "api_key_expired", "message": "The API key expired at 2030-01-01T12:05:00Z",
        "details": {"expired_at": "2030-01-01T12:05:00Z"}}


def test_the_cli_creates_keys_with_the_same_options_and_rules(runner, app):
    created = runner.invoke(args=["keys", "create", "ci", "--model", "fake", "--model", "fake-model", "--rpm", "5",
                                  "--tpm", "900", "--expires-at", FUTURE, "--metadata", '{"tags": ["ci"]}'])
    assert created.exit_code == 0, created.output
    (row,) = api_keys(app).list()
    assert (row["models"], row["rpm"], row["tpm"], row["metadata"]) == (["fake-model"], 5, 900, {"tags": ["ci"]})
    listed = runner.invoke(args=["keys", "list"]).output
    assert "rpm=5" in listed and "tpm=900" in listed and "models=fake-model" in listed and "expires 2999" in listed
    for args, message in ((["--rpm", "0"], "--rpm"), (["--expires-at", "2001-01-01"], "--expires-at"),
                          (["--metadata", "{"], "--metadata"), (["--metadata", '{"tags": [1]}'], "--metadata")):
        refused = runner.invoke(args=["keys", "create", "bad", *args])
        assert refused.exit_code != 0 and message in refused.output
    assert len(api_keys(app).list()) == 1
