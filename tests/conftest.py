"""Shared fixtures, flaskr-style: an app on a temporary database, a client and a CLI runner."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import text

from api.app import create_app
from api.services import services
from core.settings import ENV_VARS, Settings, get_settings
from models.model_registry import ModelRegistry
from models.pricing import PricingTable
from models.request_log import RequestLogRepository
from storage.database import create_db_engine, upgrade_schema
from tests.fakes import FakeModel
from tests.gemini_wire_server import GeminiWireServer

pytest_plugins = ["tests.ab_helpers"]

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")


def _postgres_available() -> bool:
    if not POSTGRES_URL:
        return False
    try:
        engine = create_db_engine(POSTGRES_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return True
    except Exception:
        return False


POSTGRES_AVAILABLE = _postgres_available()


@pytest.fixture(scope="session", autouse=True)
def process_database(tmp_path_factory):
    """Code that falls back to the process settings writes to a throwaway database, never the checkout's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", f"sqlite:///{tmp_path_factory.mktemp('process') / 'process.db'}")
        get_settings.cache_clear()
        yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def migrated_sqlite_file(tmp_path_factory):
    """Migrate one SQLite file per session; tests get copies instead of re-running every migration."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade_schema(engine)
    engine.dispose()
    return path


@pytest.fixture
def sqlite_url(tmp_path, migrated_sqlite_file) -> str:
    target = tmp_path / "test.db"
    shutil.copyfile(migrated_sqlite_file, target)
    return f"sqlite:///{target}"


@pytest.fixture
def provider_db(sqlite_url):
    """A registry (no default models, no prices) on a fresh SQLite database, and its request log: where a provider
    test registers the model it drives against a wire-format server."""
    engine = create_db_engine(sqlite_url)
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": sqlite_url})
    yield ModelRegistry(engine, settings=settings, pricing=PricingTable({}), register_defaults=False), \
        RequestLogRepository(engine)
    engine.dispose()


@contextmanager
def postgres_schema() -> Iterator[str]:
    """The URL of a fresh schema in the test PostgreSQL database, dropped afterwards; skips without one."""
    if not POSTGRES_AVAILABLE or POSTGRES_URL is None:
        pytest.skip("PostgreSQL not available (set TEST_POSTGRES_URL)")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh schema in the test PostgreSQL database, dropped afterwards."""
    with postgres_schema() as url:
        yield url


def redis_client() -> Any:
    """A client of the test Redis (TEST_REDIS_URL), checked to answer; skips the test without one. Close it."""
    url = os.environ.get("TEST_REDIS_URL")
    if not url:
        pytest.skip("Redis not available (set TEST_REDIS_URL)")
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError:
        client.close()
        pytest.skip(f"Redis not reachable at {url}")
    return client


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request, tmp_path) -> str:
    """Runs a storage test once on SQLite and once on PostgreSQL (skipped where it is absent)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def engine(database_url):
    engine = create_db_engine(database_url)
    upgrade_schema(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def settings(sqlite_url) -> Settings:
    return Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": sqlite_url,
                                                                    "DEFAULT_MODEL": "fake-model"})


@pytest.fixture
def process_env(tmp_path, monkeypatch) -> Iterator[str]:
    """The process settings a plain program gets (environment only, read afresh); returns its database URL."""
    monkeypatch.chdir(tmp_path)  # no .env, no models.yaml
    for name in (*ENV_VARS, "DATABASE_PATH", "GOOGLE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    url = f"sqlite:///{tmp_path / 'process.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


@pytest.fixture
def fake_model() -> FakeModel:
    return FakeModel()


@pytest.fixture
def app(settings, fake_model):
    app = create_app(settings, {"TESTING": True})
    services(app).registry.register_model(fake_model, aliases=("fake",))
    yield app
    services(app).stop_background()  # no thread of a finished test's app outlives it


@pytest.fixture
def svc(app):
    return services(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def gemini_server():
    """A started local server speaking Gemini's wire format (see tests/gemini_wire_server.py)."""
    with GeminiWireServer() as server:
        yield server
