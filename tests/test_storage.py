"""Storage: migrations build the schema the code expects, on SQLite and PostgreSQL, without losing rows."""

import multiprocessing

import pytest
from sqlalchemy import inspect

from models.model_store import ModelStore
from models.request_log import RequestLogRepository, RequestRecord
from storage.database import create_db_engine, current_revisions, metadata, pending_migrations, upgrade_schema
from storage.request_logger import RequestLogger


def test_migrations_build_every_table_and_column_the_code_declares(engine):
    """The hand-written migrations and the Table definitions must agree exactly."""
    import api.app  # noqa: F401 - importing the app imports every repository module, so metadata is complete

    inspector = inspect(engine)
    tables = set(inspector.get_table_names())
    assert {"request_log", "registered_models"} <= tables
    for table in metadata.sorted_tables:
        assert table.name in tables, f"no migration creates {table.name}"
        columns = {column["name"] for column in inspector.get_columns(table.name)}
        assert columns == set(table.columns.keys()), f"{table.name} differs from its migration"
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
    assert logger.log_response(request_id, "hi", tokens=5, latency=0.2, cost=0.001)
    (row,) = logger.get_request_history(limit=10)
    assert (row["status"], row["response"], row["total_tokens"]) == ("success", "hi", 5)


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
