"""Rollups stay equal to the raw request log: incremental upserts, rebuilds, legacy updates, retention."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from models.request_log import RequestLogRepository, RequestRecord, request_log
from models.rollups import LATENCY_BOUNDS, ROLLUP_TABLES, latency_bucket, purge_raw_rows
from monitoring import rollup_reads
from monitoring.histogram import percentile
from monitoring.rollup_rebuild import rebuild_rollups
from storage.database import read
from storage.request_logger import RequestLogger

BASE = datetime(2026, 3, 10, 12, 0)


def _record(model="m1", status="success", minutes=0, **fields) -> RequestRecord:
    values: dict[str, Any] = dict(input_tokens=10, output_tokens=5, thinking_tokens=1, cached_tokens=2,
                                  total_tokens=15, latency=0.25, cost=0.001)
    values.update(fields)
    return RequestRecord(request_id=str(uuid.uuid4()), model=model, provider="fake", source="api", status=status,
                         created_at=BASE + timedelta(minutes=minutes), **values)


def _seed(repo: RequestLogRepository) -> None:
    repo.insert(_record(user_id="alice", tags=["x", "y"]))
    repo.insert(_record(minutes=30, latency=1.5, cost=0.002, user_id="bob", tags=["y"]))
    repo.insert(_record(minutes=90, status="error", error_type="provider_unavailable", cost=None,
                        input_tokens=None, output_tokens=None, total_tokens=None, latency=0.1))
    repo.insert(_record(model="m2", minutes=-60, status="rejected", error_type="budget_exceeded", cost=None))
    repo.insert(_record(model="m2", minutes=5, ttft=0.05, user_id="alice"))


def _raw_totals(engine) -> dict[str, dict[str, float]]:
    c = request_log.c
    query = select(c.model, func.count().label("n"), func.sum(c.cost).label("cost"),
                   func.sum(c.total_tokens).label("tokens"), func.sum(c.input_tokens).label("input"),
                   func.sum(c.latency).label("latency")).group_by(c.model)
    with read(engine) as conn:
        return {row.model: row._asdict() for row in conn.execute(query)}


def _rollup_snapshot(engine) -> dict[str, list]:
    with read(engine) as conn:
        return {t.name: sorted(tuple(row) for row in conn.execute(select(t))) for t in ROLLUP_TABLES}


def test_rollups_match_the_raw_log(engine):
    _seed(RequestLogRepository(engine))
    rolled = rollup_reads.totals_by_model(engine, None, None)
    for model, raw in _raw_totals(engine).items():
        sums = rolled[model]
        assert sum(sums[n] for n in ("n_success", "n_error", "n_rejected", "n_cancelled")) == raw["n"]
        assert sums["cost"] == pytest.approx(raw["cost"] or 0.0, abs=1e-15)
        assert sums["total_tokens"] == raw["tokens"]
        assert sums["input_tokens"] == raw["input"]
        assert sums["latency_sum"] == pytest.approx(raw["latency"])
    assert rollup_reads.errors_by_model(engine, None, None) == {
        "m1": {"provider_unavailable": 1}, "m2": {"budget_exceeded": 1}}
    users = {row["key"]: row for row in rollup_reads.usage_by_key(engine, "user", None, None)}
    assert users["alice"]["requests"] == 2 and users["alice"]["cost"] == pytest.approx(0.002)
    tags = {row["key"]: row["requests"] for row in rollup_reads.usage_by_key(engine, "tag", None, None)}
    assert tags == {"x": 1, "y": 2}


def test_time_range_selects_whole_hours(engine):
    _seed(RequestLogRepository(engine))
    only_noon = rollup_reads.totals_by_model(engine, BASE, BASE + timedelta(hours=1))
    assert set(only_noon) == {"m1", "m2"}
    assert only_noon["m1"]["n_success"] == 2 and only_noon["m1"]["n_error"] == 0
    hours = [hour for hour, _ in rollup_reads.totals_by_hour(engine, None, None)]
    assert hours == [BASE - timedelta(hours=1), BASE, BASE + timedelta(hours=1)]


def test_rebuild_reproduces_incremental_rollups(engine):
    repo = RequestLogRepository(engine)
    _seed(repo)
    repo.insert(_record(minutes=10, status="pending", tags=["z"]))  # not a finished call: never counted
    repo.insert(_record(minutes=11, status="cancelled", tags=["y", "y"], latency=None, user_id=""))
    incremental = _rollup_snapshot(engine)
    assert rebuild_rollups(engine) == 6
    assert _rollup_snapshot(engine) == incremental
    assert rebuild_rollups(engine, since=BASE + timedelta(hours=1)) == 1
    assert _rollup_snapshot(engine) == incremental


def test_legacy_two_step_logging_is_counted_once_with_final_values(engine):
    logger = RequestLogger(engine)
    request_id = logger.log_request("legacy", "prompt")
    assert rollup_reads.totals_by_model(engine, None, None) == {}  # pending rows are not calls yet
    logger.log_response(request_id, "answer", tokens=42, latency=0.5, cost=0.25)
    sums = rollup_reads.totals_by_model(engine, None, None)["legacy"]
    assert (sums["n_success"], sums["total_tokens"], sums["cost"], sums["latency_count"]) == (1, 42, 0.25, 1)
    logger.log_response(request_id, None, success=False, error="boom")
    sums = rollup_reads.totals_by_model(engine, None, None)["legacy"]
    assert (sums["n_success"], sums["n_error"], sums["total_tokens"]) == (0, 1, 0)


def test_retention_deletes_raw_rows_and_keeps_rollups(engine):
    repo = RequestLogRepository(engine)
    _seed(repo)
    before = rollup_reads.totals_by_model(engine, None, None)
    deleted = purge_raw_rows(engine, retention_days=1, now=BASE + timedelta(days=1, minutes=20))
    assert deleted == 3  # the rows before 12:20 the previous day
    assert repo.count() == 2
    assert rollup_reads.totals_by_model(engine, None, None) == before


def test_concurrent_writers_lose_no_increment(engine):
    repo = RequestLogRepository(engine)

    def writer(n: int) -> None:
        for i in range(10):
            repo.insert(_record(minutes=i, user_id=f"u{n % 2}", tags=["b", "a"] if n % 2 else ["a", "b"]))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sums = rollup_reads.totals_by_model(engine, None, None)["m1"]
    assert sums["n_success"] == 80 and sums["total_tokens"] == 80 * 15
    assert {r["key"]: r["requests"] for r in rollup_reads.usage_by_key(engine, "tag", None, None)} == {"a": 80, "b": 80}


@pytest.mark.parametrize("latency", [0.0, 0.001, 0.005, 0.0051, 0.3, 2.0, 327.68, 5000.0])
def test_latency_bucket_holds_its_value(latency):
    index = latency_bucket(latency)
    assert index == len(LATENCY_BOUNDS) or latency <= LATENCY_BOUNDS[index]
    assert index == 0 or latency > LATENCY_BOUNDS[index - 1]


def test_percentiles_from_buckets_are_within_one_bucket():
    latencies = [0.01 * 1.05 ** i for i in range(200)]
    counts = [0] * (len(LATENCY_BOUNDS) + 1)
    for value in latencies:
        counts[latency_bucket(value)] += 1
    for q in (0.5, 0.95, 0.99):
        exact = sorted(latencies)[int(q * len(latencies)) - 1]
        assert exact / 1.26 <= percentile(counts, q) <= exact * 1.26
    assert percentile([0] * len(counts), 0.5) is None
