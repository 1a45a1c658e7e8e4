"""Storage: migrations build the schema the code expects, on SQLite and PostgreSQL, without losing rows."""

import importlib
import multiprocessing
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, UniqueConstraint, inspect

from models.model_store import ModelStore
from models.request_log import RequestLogRepository, RequestRecord
from storage.database import create_db_engine, current_revisions, metadata, pending_migrations, upgrade_schema
from storage.request_logger import RequestLogger

# Every module that declares tables; imported here so metadata is complete whatever else the tests import.
TABLE_MODULES = (
    "ab_testing.tables",
    "ab_testing.rollout_store",
    "api.key_store",
    "comparison.tables",
    "models.model_store",
    "models.prompts.tables",
    "models.cache.stores",
    "models.request_log",
    "models.version_store",
    "models.rollups",
    "models.routing.breaker_store",
    "monitoring.budget_store",
    "monitoring.metric_samples",
    "monitoring.tracked_costs",
    "storage.minute_usage",
    "workflows.store",
)


def _schema_diff(conn: Connection) -> list[Any]:
    """What autogenerate would change to turn the migrated schema into the code's metadata."""
    context = MigrationContext.configure(conn, opts={
        "compare_type": True,
        "compare_server_default": True,
        "include_name": lambda name, kind, _parents: not (kind == "table" and name == "alembic_version"),
    })
    return compare_metadata(context, metadata)


def test_migrated_schema_equals_the_table_declarations(engine: Engine) -> None:
    """Migrations are hand-written, so only a comparison proves they build what the Table declarations say."""
    for module in TABLE_MODULES:
        importlib.import_module(module)
    with engine.connect() as conn:
        assert _schema_diff(conn) == []
        # Autogenerate never compares primary keys, and on SQLite it cannot see unnamed unique constraints.
        inspector = inspect(conn)
        for table in metadata.sorted_tables:
            primary_key = inspector.get_pk_constraint(table.name)["constrained_columns"]
            assert primary_key == [column.name for column in table.primary_key], table.name
            uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table.name)}
            declared = {tuple(c.columns.keys()) for c in table.constraints if isinstance(c, UniqueConstraint)}
            assert uniques == declared, table.name
    assert not pending_migrations(engine)


def test_upgrade_is_idempotent(engine):
    before = current_revisions(engine)
    upgrade_schema(engine)
    assert current_revisions(engine) == before != set()


def test_request_log_round_trip_and_filters(engine):
    repo = RequestLogRepository(engine)
    repo.insert(RequestRecord(request_id="r1", model="m1", provider="p", source="api", status="success",
                              input_tokens=3, output_tokens=4, total_tokens=7, cost=0.5, tags=["a"]))
    repo.insert(RequestRecord(request_id="r2", model="m2", provider="p", source="library", status="error",
                              error_type="provider_unavailable", error_message="down"))
    assert [row["request_id"] for row in repo.list()] == ["r2", "r1"]
    assert [row["request_id"] for row in repo.list(model="m1")] == ["r1"]
    assert [row["request_id"] for row in repo.list(status="error")] == ["r2"]
    row = repo.get("r1")
    assert row["tags"] == ["a"] and row["total_tokens"] == 7 and row["created_at"].endswith("Z")
    assert repo.count() == 2 and repo.count(status="error") == 1


def test_model_store_keeps_one_id_per_name(engine):
    store = ModelStore(engine)
    first = store.upsert("m", "fake", aliases=["x"])
    again = store.upsert("m", "fake", aliases=["y"])
    assert first == again
    assert [row["aliases"] for row in store.list()] == [["y"]]


def test_original_request_logger_api(engine):
    logger = RequestLogger(engine)
    request_id = logger.log_request("gemini-2.5-flash", "hello")
    assert logger.log_response(request_id, "hi", tokens=5, latency=0.2, cost=0.001) == request_id
    assert logger.log_response("no-such-request", "hi") is None
    (row,) = logger.get_request_history(limit=10)
    assert (row["status"], row["response"], row["total_tokens"], row["tokens"]) == ("success", "hi", 5, 5)
    assert logger.get_total_requests() == 1


def _insert_many(url: str, worker: int, count: int) -> None:
    engine = create_db_engine(url)
    repo = RequestLogRepository(engine)
    for i in range(count):
        repo.insert(RequestRecord(request_id=f"w{worker}-{i}", model="m", provider="p", source="library",
                                  status="success"))
    engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_processes_lose_no_rows(backend, tmp_path, request):
    """4 processes x 250 inserts into one database: exactly 1,000 rows, no 'database is locked'."""
    url = f"sqlite:///{tmp_path / 'concurrent.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    engine = create_db_engine(url)
    upgrade_schema(engine)
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_insert_many, args=(url, n, 250)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [worker.exitcode for worker in workers] == [0, 0, 0, 0]
    assert RequestLogRepository(engine).count() == 1000
    engine.dispose()
