"""Upgrading a populated database: every migration runs over rows written by the ones before it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Engine, MetaData, Table, select

from models.request_log import RequestLogRepository, RequestRecord
from models.rollups import ROLLUP_TABLES
from monitoring import rollup_reads
from monitoring.rollup_rebuild import rebuild_rollups
from storage.database import _alembic_config, create_db_engine, metadata, read, upgrade_schema, write

T = datetime(2026, 3, 10, 12, 5, 30, 123456)  # microseconds too: they must survive on both databases


def _log(request_id: str, model: str, status: str, minutes: int, **values: Any) -> dict[str, Any]:
    return {"request_id": request_id, "created_at": T + timedelta(minutes=minutes), "model": model,
            "provider": "fake", "source": "api", "stream": False, "status": status, **values}


# Rows written right after the revision that creates their table, in that revision's schema. Foreign keys
# name id 1: the first row of a fresh table.
ROWS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "0001": [
        ("request_log", _log("r1", "m1", "success", 0, user_id="alice", api_key_id="k1", tags=["x", "y"],
                             params={"temperature": 0.5}, prompt="hi", response="hello", input_tokens=10,
                             output_tokens=5, thinking_tokens=1, cached_tokens=2, total_tokens=16, latency=0.25,
                             ttft=0.125, cost=0.5, finish_reason="stop")),
        ("request_log", _log("r2", "m1", "error", 40, latency=1.5, error_type="provider_unavailable",
                             error_message="down")),
        ("request_log", _log("r3", "m2", "success", 70, user_id="bob", tags=["y"], total_tokens=7, latency=0.5,
                             cost=0.25, stream=True)),
        ("request_log", _log("r4", "m2", "pending", 80, prompt="not answered yet")),
        ("registered_models", {"name": "m1", "provider": "fake", "aliases": ["one"], "capabilities": {"chat": True},
                               "pricing": {"input": 0.5}, "created_at": T, "updated_at": T}),
    ],
    "0002": [
        ("budgets", {"name": "team", "scope": "user", "target": "alice", "period": "month", "limit_usd": 10.0,
                     "hard_limit": True, "alert_thresholds": [0.5, 0.9], "webhook_url": None, "created_at": T,
                     "updated_at": T}),
        ("budget_alerts", {"budget_id": 1, "budget_name": "team", "threshold": 0.5, "window_start": T,
                           "spend": 5.5, "limit_usd": 10.0, "created_at": T, "webhook_attempts": 2}),
    ],
    "0003": [
        ("workflow_runs", {"run_id": "run-1", "workflow_name": "wf", "workflow_version": 3, "status": "succeeded",
                           "definition": {"name": "wf", "steps": [{"name": "a"}]}, "input": "in",
                           "variables": {"k": "v"}, "final_output": "out", "total_tokens": 12, "created_at": T,
                           "updated_at": T, "finished_at": T}),
        ("workflow_run_steps", {"run_id": "run-1", "position": 0, "name": "a", "model": "m1", "status": "succeeded",
                                "output": "out", "parsed": {"x": [1]}, "tokens": 12, "request_id": "r1"}),
    ],
    "0004": [
        ("benchmark_runs", {"created_at": T, "updated_at": T, "status": "completed", "dataset": "mini",
                            "models": ["m1", "m2"], "total": 2, "completed": 2, "report": {"m1": {"accuracy": 1.0}}}),
        ("benchmark_results", {"run_id": 1, "created_at": T, "item_id": "q1", "model": "m1", "status": "success",
                               "score": 1.0, "correct": True, "scores": {"exact": 1.0}}),
    ],
    "0005": [
        ("experiments", {"key": "exp", "name": "Exp", "status": "running", "control": "a", "coverage": 1.0,
                         "seed": "s", "primary_metric": "success", "alpha": 0.05, "power": 0.8,
                         "min_sample_size": 100, "min_conversions": 10, "created_at": T, "updated_at": T}),
        ("experiment_variants", {"experiment_id": 1, "position": 0, "name": "a", "model": "m1", "weight": 1.0}),
    ],
    "0006": [
        ("api_keys", {"id": "key-1", "name": "ci", "key_hash": "h" * 64, "prefix": "amm_abcd", "created_at": T}),
    ],
    "0010": [
        ("metric_samples", {"created_at": T, "model": "m1", "metric_name": "latency", "metric_value": 1.5}),
    ],
    "0011": [
        ("tracked_costs", {"created_at": T, "model": "m1", "cost": 0.5, "tokens": 16, "request_id": "r1",
                           "linked": True}),
    ],
    "0015": [
        ("key_usage", {"key_id": "key-1", "window_start": T.replace(second=0, microsecond=0), "requests": 3,
                       "tokens": 120}),
    ],
}


@pytest.fixture(params=["sqlite", "postgres"])
def populated_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database taken through the revisions one by one, with ROWS written along the way, then to head."""
    url = f"sqlite:///{tmp_path / 'old.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = create_db_engine(url)
    for revision, rows in ROWS.items():
        with write(engine) as conn:
            command.upgrade(_alembic_config(conn), revision)
            tables = MetaData()
            for name, row in rows:  # reflected: the table as this revision built it, not as the code declares it
                conn.execute(Table(name, tables, autoload_with=conn).insert(), row)
    upgrade_schema(engine)  # the rest, as a starting server applies it
    yield engine
    engine.dispose()


def test_upgrade_keeps_every_row_and_value(populated_engine: Engine) -> None:
    """A migration that drops, rewrites or cascades away existing rows must not reach a real database."""
    with read(populated_engine) as conn:
        for name in dict.fromkeys(name for rows in ROWS.values() for name, _ in rows):
            expected = [row for rows in ROWS.values() for table, row in rows if table == name]
            table = metadata.tables[name]
            stored = conn.execute(select(table).order_by(*table.primary_key)).mappings().all()
            assert len(stored) == len(expected), name
            for row, want in zip(stored, expected, strict=True):
                assert {key: row[key] for key in want} == want, name
        for name in ("workflow_runs", "benchmark_runs"):  # columns added later: NULL means "no heartbeat yet"
            table = metadata.tables[name]
            assert conn.execute(select(table.c.owner, table.c.heartbeat_at)).all() == [(None, None)]
    repo = RequestLogRepository(populated_engine)  # and the code writes next to the old rows
    repo.insert(RequestRecord(request_id="r5", model="m1", provider="fake", source="api", status="success"))
    first = repo.get("r1")
    assert repo.count() == 5 and first is not None and first["tags"] == ["x", "y"]


def _rollups(engine: Engine) -> dict[str, list[tuple]]:
    with read(engine) as conn:
        return {table.name: sorted(tuple(row) for row in conn.execute(select(table))) for table in ROLLUP_TABLES}


def test_rollups_created_by_0002_start_out_equal_to_the_existing_request_log(populated_engine: Engine) -> None:
    """Monitoring reads only the rollups: without a backfill, calls logged before 0002 would vanish from it."""
    totals = rollup_reads.totals_by_model(populated_engine, None, None)
    assert {model: (t["n_success"], t["n_error"], t["cost"], t["latency_sum"]) for model, t in totals.items()} == {
        "m1": (1, 1, 0.5, 1.75), "m2": (1, 0, 0.25, 0.5)}  # r4 is pending: not a call yet
    assert rollup_reads.errors_by_model(populated_engine, None, None) == {"m1": {"provider_unavailable": 1}}
    tags = {row["key"]: row["requests"] for row in rollup_reads.usage_by_key(populated_engine, "tag", None, None)}
    assert tags == {"x": 1, "y": 2}
    backfilled = _rollups(populated_engine)
    assert rebuild_rollups(populated_engine) == 3  # the code's own rebuild from the raw log agrees exactly
    assert _rollups(populated_engine) == backfilled
