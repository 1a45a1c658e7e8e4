"""API keys (bootstrap and managed, hashed) and per-key rate limits with a JSON 429 and Retry-After."""

import os

import pytest
from sqlalchemy import text

from api.app import create_app
from api.services import services
from benchmarks.server_harness import free_port
from core.settings import Settings, SettingsError


def _app(tmp_path, **env):
    overrides = {"DATABASE_URL": f"sqlite:///{tmp_path / 'auth.db'}", **env}
    return create_app(Settings.from_env(environ={}, env_file=None, overrides=overrides))


def test_without_any_key_the_api_is_open(tmp_path):
    client = _app(tmp_path).test_client()
    assert client.get("/api/requests").status_code == 200
    # SDKs always send some key; with none configured it is ignored rather than refused
    assert client.get("/v1/models", headers={"Authorization": "Bearer sk-anything"}).status_code == 200


def test_bootstrap_keys_are_required_and_accepted_both_ways(tmp_path):
    client = _app(tmp_path, API_KEYS="alpha-key, beta-key").test_client()
    denied = client.get("/api/requests")
    assert denied.status_code == 401 and denied.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/api/requests", headers={"Authorization": "Bearer alpha-key"}).status_code == 200
    assert client.get("/api/requests", headers={"X-API-Key": "beta-key"}).status_code == 200
    wrong = client.get("/api/requests", headers={"X-API-Key": "nope"})
    assert wrong.status_code == 401 and wrong.get_json()["error"]["code"] == "invalid_api_key"


def test_public_endpoints_stay_public(tmp_path):
    client = _app(tmp_path, API_KEYS="k").test_client()
    assert client.get("/health").status_code == 200
    assert client.get("/").status_code == 200


def test_managed_keys_are_stored_hashed_and_revocable(tmp_path):
    app = _app(tmp_path)
    runner, client = app.test_cli_runner(), app.test_client()
    created = runner.invoke(args=["keys", "create", "team-a"])
    assert created.exit_code == 0
    key = created.output.strip().splitlines()[-1]
    key_id = created.output.split()[1]
    assert client.get("/api/requests").status_code == 401
    assert client.get("/api/requests", headers={"X-API-Key": key}).status_code == 200
    with services(app).engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(text("SELECT * FROM api_keys")) for v in row)
    assert key not in stored
    assert key not in runner.invoke(args=["keys", "list"]).output
    assert runner.invoke(args=["keys", "revoke", key_id]).exit_code == 0
    assert client.get("/api/requests", headers={"X-API-Key": key}).status_code == 401
    assert client.get("/api/requests").status_code == 401  # revoking the last key does not reopen the service
    assert runner.invoke(args=["keys", "revoke", key_id]).exit_code != 0


def test_request_log_rows_carry_the_key_id_never_the_key(tmp_path):
    from tests.fakes import FakeModel

    app = _app(tmp_path, API_KEYS="secret-key-123", DEFAULT_MODEL="fake-model")
    services(app).registry.register_model(FakeModel())
    client, headers = app.test_client(), {"X-API-Key": "secret-key-123"}
    assert client.post("/api/generate", json={"prompt": "hi"}, headers=headers).status_code == 200
    (row,) = client.get("/api/requests", headers=headers).get_json()["requests"]
    assert row["api_key_id"].startswith("env_") and "secret-key-123" not in str(row)


def test_rate_limit_answers_json_429_with_retry_after(tmp_path):
    client = _app(tmp_path, RATE_LIMIT="3/minute").test_client()
    statuses = [client.get("/api/requests").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.get("/api/requests")
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    assert client.get("/health").status_code == 200  # only /api/ is limited


def test_rate_limits_are_per_key(tmp_path):
    client = _app(tmp_path, API_KEYS="a,b", RATE_LIMIT="2/minute").test_client()
    for _ in range(2):
        assert client.get("/api/requests", headers={"X-API-Key": "a"}).status_code == 200
    assert client.get("/api/requests", headers={"X-API-Key": "a"}).status_code == 429
    assert client.get("/api/requests", headers={"X-API-Key": "b"}).status_code == 200


def test_an_unreachable_rate_limit_store_fails_open_and_health_says_so(tmp_path, caplog):
    client = _app(tmp_path, RATE_LIMIT="3/minute",
                  RATE_LIMIT_STORAGE_URL=f"redis://127.0.0.1:{free_port()}/0").test_client()  # nothing listens
    statuses = [client.get("/api/requests").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # served, with the limit kept in this process meanwhile
    assert "Rate limit storage unreachable" in caplog.text
    health = client.get("/health")
    assert health.status_code == 200
    assert health.get_json()["status"] == "degraded" and health.get_json()["rate_limits"] == "degraded"
    assert _app(tmp_path, RATE_LIMIT="3/minute").test_client().get("/health").get_json()["rate_limits"] == "ok"
    assert _app(tmp_path).test_client().get("/health").get_json()["rate_limits"] == "off"


def test_invalid_rate_limit_setting_names_the_variable():
    with pytest.raises(SettingsError, match="RATE_LIMIT"):
        Settings.from_env(environ={"RATE_LIMIT": "lots"}, env_file=None)


def _redis_available() -> bool:
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        return False
    try:
        import redis

        with redis.Redis.from_url(url, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except Exception:
        return False


@pytest.mark.skipif(not _redis_available(), reason="Redis not available (TEST_REDIS_URL)")
def test_two_workers_share_one_limit_through_redis(tmp_path):
    import uuid

    key = f"k-{uuid.uuid4().hex}"  # a fresh key, so earlier runs' counters in Redis do not interfere
    env = {"API_KEYS": key, "RATE_LIMIT": "3/minute", "RATE_LIMIT_STORAGE_URL": os.environ["TEST_REDIS_URL"]}
    first, second = _app(tmp_path, **env).test_client(), _app(tmp_path, **env).test_client()
    headers = {"X-API-Key": key}
    statuses = [client.get("/api/requests", headers=headers).status_code for client in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
