"""The write path: group commit, the SQLite writer lock, the TTL cache, and the stores built on them.

Concurrency is arranged with events rather than sleeps: the first `write_batch` call blocks until
released, so every later submitter is provably queued behind it before the batch runs.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import threading
import time
import uuid
from collections import Counter
from datetime import datetime

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError

from api.key_store import ApiKeyStore
from models import rollups
from models.request_log import RequestLogRepository, RequestRecord, request_log
from models.rollups import rollup_hourly
from monitoring.rollup_rebuild import rebuild_rollups
from storage import ttl_cache
from storage.database import create_db_engine, read, write
from storage.group_commit import GroupCommit
from storage.sqlite_writer_lock import SQLiteWriterLock
from storage.ttl_cache import TtlCache

BASE = datetime(2026, 3, 10, 12, 0)  # one fixed hour: every record adds to the same rollup row
TIMEOUT = 5.0


def _wait_until(condition, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


class FirstCallHeld:
    """A `write_batch` whose first call blocks until `release` is set; every call is recorded in `calls`."""

    def __init__(self, write_items) -> None:
        self.write_items = write_items
        self.calls: list[list] = []
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, items) -> None:
        self.calls.append(list(items))  # calls are serialized by GroupCommit's writer lock
        if len(self.calls) == 1:
            self.entered.set()
            assert self.release.wait(TIMEOUT)
        self.write_items(items)

    @property
    def sizes(self) -> list[int]:
        return [len(call) for call in self.calls]


def _submit_queued(group_commit: GroupCommit, held: FirstCallHeld, items: list, submit=None) -> list:
    """Submit items[0], then, while its write is held, each other item from its own thread.

    Returns one outcome per item, in order: None when `submit` returned, else what it raised.
    """
    submit = submit or group_commit.submit
    outcomes: dict[int, BaseException | None] = {}

    def run(index: int, item) -> None:
        try:
            submit(item)
        except BaseException as exc:  # KeyboardInterrupt included: it is an outcome here
            outcomes[index] = exc
        else:
            outcomes[index] = None

    threads = [threading.Thread(target=run, args=(0, items[0]), daemon=True)]
    threads[0].start()
    assert held.entered.wait(TIMEOUT)
    for index, item in enumerate(items[1:], start=1):
        threads.append(threading.Thread(target=run, args=(index, item), daemon=True))
        threads[-1].start()
    _wait_until(lambda: len(group_commit._queue) == len(items) - 1)
    assert outcomes == {}, "a submitter returned before the held write finished"
    held.release.set()
    for thread in threads:
        thread.join(TIMEOUT)
        assert not thread.is_alive()
    return [outcomes[index] for index in range(len(items))]


# GroupCommit


def test_group_commit_writes_queued_submitters_in_one_batch():
    written: list[int] = []
    held = FirstCallHeld(written.extend)
    group_commit = GroupCommit(held)

    def submit_and_check(item: int) -> None:
        group_commit.submit(item)
        assert item in written, "submit returned before its item was written"

    outcomes = _submit_queued(group_commit, held, list(range(21)), submit=submit_and_check)
    assert outcomes == [None] * 21
    assert sorted(written) == list(range(21))  # each exactly once
    assert held.sizes == [1, 20]  # the first alone, then everyone who queued behind it together


def test_group_commit_failed_batch_is_retried_singly_so_only_the_bad_item_fails():
    written: list[str] = []

    def write_items(items) -> None:
        if "bad" in items:
            raise ValueError("bad item")
        written.extend(items)

    held = FirstCallHeld(write_items)
    group_commit = GroupCommit(held)
    items = ["first", *(f"good{i}" for i in range(5)), "bad", *(f"good{i}" for i in range(5, 10))]
    outcomes = _submit_queued(group_commit, held, items)

    bad = items.index("bad")
    assert isinstance(outcomes[bad], ValueError)
    assert outcomes[:bad] + outcomes[bad + 1:] == [None] * (len(items) - 1)
    assert sorted(written) == sorted(item for item in items if item != "bad")  # each good item exactly once
    assert held.sizes == [1, len(items) - 1] + [1] * (len(items) - 1)  # the batch failed, then one by one


def test_group_commit_fails_the_whole_batch_at_once_on_an_error_no_single_item_causes():
    """A lost database is not one item's fault: retrying N items one by one would only repeat it N times."""
    held = FirstCallHeld(lambda items: None)

    def write_items(items) -> None:
        if len(held.calls) > 1:
            raise ConnectionError("database unreachable")

    held.write_items = write_items
    group_commit = GroupCommit(held, item_error=lambda exc: not isinstance(exc, ConnectionError))
    outcomes = _submit_queued(group_commit, held, ["first", *(f"item{i}" for i in range(6))])
    assert outcomes[0] is None and all(isinstance(outcome, ConnectionError) for outcome in outcomes[1:])
    assert held.sizes == [1, 6]  # no single retries


def test_request_log_tells_one_rows_fault_from_a_database_failure():
    from sqlalchemy.exc import DataError, OperationalError

    from models.request_log import _one_rows_fault

    assert _one_rows_fault(IntegrityError("INSERT", {}, Exception("UNIQUE constraint failed")))
    assert _one_rows_fault(DataError("INSERT", {}, Exception("value too long")))
    assert _one_rows_fault(TypeError("Object of type set is not JSON serializable"))
    assert not _one_rows_fault(OperationalError("INSERT", {}, Exception("server closed the connection")))


def test_group_commit_lone_submitter_writes_in_its_own_thread():
    """No hand-off to another thread, so no added latency when there is no contention."""
    writers: list[threading.Thread] = []
    group_commit = GroupCommit(lambda items: writers.append(threading.current_thread()))

    group_commit.submit("main")
    worker = threading.Thread(target=group_commit.submit, args=("worker",))
    worker.start()
    worker.join(TIMEOUT)
    assert writers == [threading.current_thread(), worker]


def test_group_commit_raises_base_exceptions_to_every_caller_without_retrying():
    """A KeyboardInterrupt is not a bad item: no single retries, nothing counted as written, all callers see it."""
    written: list[int] = []
    held = FirstCallHeld(lambda items: None)

    def write_items(items) -> None:
        if len(held.calls) > 1:
            raise KeyboardInterrupt
        written.extend(items)

    held.write_items = write_items
    group_commit = GroupCommit(held)
    outcomes = _submit_queued(group_commit, held, list(range(6)))

    assert outcomes[0] is None
    assert all(isinstance(outcome, KeyboardInterrupt) for outcome in outcomes[1:])
    assert held.sizes == [1, 5]  # the interrupted batch was not retried item by item
    assert written == [0]
    assert group_commit._queue == []

    with pytest.raises(KeyboardInterrupt):  # a lone caller too
        group_commit.submit(99)
    held.write_items = written.extend  # and the group commit is still usable afterwards
    group_commit.submit(100)
    assert written == [0, 100]


# RequestLogRepository on the group commit


def _record(request_id: str | None = None) -> RequestRecord:
    return RequestRecord(request_id=request_id or str(uuid.uuid4()), model="m", provider="p", source="api",
                         status="success", created_at=BASE, latency=0.1, total_tokens=3, cost=0.001)


def _hourly_rollups(engine) -> dict[tuple, dict]:
    with read(engine) as conn:
        rows = conn.execute(select(rollup_hourly)).mappings()
        return {(row["hour"], row["model"]): {k: v for k, v in row.items() if k not in ("hour", "model")}
                for row in rows}


def _assert_rollups_match_log(engine, expected_rows: int) -> None:
    """The live rollups count every stored row once and equal a rebuild from the raw log."""
    with read(engine) as conn:
        assert conn.execute(select(func.count()).select_from(request_log)).scalar_one() == expected_rows
        n_success, cost, tokens = conn.execute(select(
            func.sum(rollup_hourly.c.n_success), func.sum(rollup_hourly.c.cost),
            func.sum(rollup_hourly.c.total_tokens))).one()
    assert n_success == expected_rows
    assert tokens == 3 * expected_rows
    assert cost == pytest.approx(0.001 * expected_rows)
    live = _hourly_rollups(engine)
    assert rebuild_rollups(engine) == expected_rows
    rebuilt = _hourly_rollups(engine)
    assert live.keys() == rebuilt.keys()
    for key, sums in live.items():
        assert sums == pytest.approx(rebuilt[key])  # float sums may differ in the last bits by summation order


def test_request_log_concurrent_inserts_store_every_row_and_rollup(engine):
    repo = RequestLogRepository(engine)
    start = threading.Barrier(16)
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            start.wait(TIMEOUT)
            for _ in range(25):
                repo.insert(_record())
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(4 * TIMEOUT)
    assert errors == []
    _assert_rollups_match_log(engine, 400)


def test_request_log_batch_for_one_rollup_key_merges_contributions(engine):
    """A batch of ten rows for one (hour, model) upserts that rollup row once, with the ten summed."""
    repo = RequestLogRepository(engine)
    held = FirstCallHeld(repo._insert_batch)
    repo._group_commit._write_batch = held
    upserted_rows: list[int] = []

    @event.listens_for(engine, "before_execute")
    def count_hourly_upserts(conn, clause, multiparams, params, execution_options):
        if getattr(clause, "table", None) is rollup_hourly:
            upserted_rows.append(len(multiparams) or 1)  # a list of parameter sets, or one set in `params`

    try:
        outcomes = _submit_queued(repo._group_commit, held, [_record() for _ in range(11)], submit=repo.insert)
    finally:
        event.remove(engine, "before_execute", count_hourly_upserts)
    assert outcomes == [None] * 11
    assert held.sizes == [1, 10]
    assert upserted_rows == [1, 1]  # one parameter set per batch, not one per row
    _assert_rollups_match_log(engine, 11)


def test_request_log_row_and_rollups_commit_together(engine, monkeypatch):
    """When the rollup update fails, the row is rolled back with it: the two never drift apart."""
    repo = RequestLogRepository(engine)

    def failing_apply_rows(conn, rows):
        raise RuntimeError("rollup update failed")

    with monkeypatch.context() as patch:
        patch.setattr(rollups, "apply_rows", failing_apply_rows)
        with pytest.raises(RuntimeError):
            repo.insert(_record())
    assert repo.count() == 0
    repo.insert(_record())
    _assert_rollups_match_log(engine, 1)


def test_request_log_duplicate_request_id_fails_only_its_caller(engine):
    repo = RequestLogRepository(engine)
    repo.insert(_record("dup"))
    held = FirstCallHeld(repo._insert_batch)
    repo._group_commit._write_batch = held
    records = [_record() for _ in range(10)]
    records[6] = _record("dup")
    outcomes = _submit_queued(repo._group_commit, held, records, submit=repo.insert)

    assert isinstance(outcomes[6], IntegrityError)
    assert outcomes[:6] + outcomes[7:] == [None] * 9
    assert held.sizes == [1, 9] + [1] * 9  # the batch failed as a whole, then each record alone
    stored = {record.request_id for i, record in enumerate(records) if i != 6} | {"dup"}
    with read(engine) as conn:
        assert set(conn.execute(select(request_log.c.request_id)).scalars()) == stored
    _assert_rollups_match_log(engine, 10)  # the failed batch's rollups were rolled back with its rows


# SQLiteWriterLock


def _can_lock(path: str) -> bool:
    """Whether a fresh descriptor (as another process would have) could take the file lock right now."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def _hold_in_child(lock: SQLiteWriterLock, holding, release) -> None:
    with lock.held():
        holding.set()
        release.wait(TIMEOUT)


def test_writer_lock_excludes_a_forked_process(tmp_path):
    lock = SQLiteWriterLock(str(tmp_path / "app.db"))
    with lock.held():  # opens the parent's descriptor, which the child inherits
        pass
    context = multiprocessing.get_context("fork")
    holding, release = context.Event(), context.Event()
    child = context.Process(target=_hold_in_child, args=(lock, holding, release))
    child.start()
    try:
        assert holding.wait(TIMEOUT)
        assert not _can_lock(lock.lock_path)
        with pytest.raises(BlockingIOError):  # the child opened its own descriptor instead of sharing ours
            fcntl.flock(lock._file(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        release.set()
        child.join(TIMEOUT)
    assert child.exitcode == 0
    assert _can_lock(lock.lock_path)
    with lock.held():
        assert not _can_lock(lock.lock_path)


def test_writer_lock_is_reentrant_and_excludes_other_threads(tmp_path):
    lock = SQLiteWriterLock(str(tmp_path / "app.db"))
    nested_done, other_entered, release = threading.Event(), threading.Event(), threading.Event()
    file_lock_kept: list[bool] = []

    def nested() -> None:
        with lock.held():
            with lock.held():
                pass
            file_lock_kept.append(not _can_lock(lock.lock_path))  # leaving the inner block kept the file lock
            nested_done.set()
            release.wait(TIMEOUT)

    def other() -> None:
        with lock.held():
            other_entered.set()

    holder = threading.Thread(target=nested, daemon=True)
    holder.start()
    assert nested_done.wait(TIMEOUT), "nested held() deadlocked"
    assert file_lock_kept == [True]
    waiter = threading.Thread(target=other, daemon=True)
    waiter.start()
    assert not other_entered.wait(0.1)  # blocked while the first thread holds the lock
    release.set()
    assert other_entered.wait(TIMEOUT)
    for thread in (holder, waiter):
        thread.join(TIMEOUT)
    assert _can_lock(lock.lock_path)


def test_sqlite_write_queues_behind_the_writer_lock_file(sqlite_url):
    """`write(engine)` on a SQLite file waits while another process holds `<database>-writer.lock`."""
    engine = create_db_engine(sqlite_url)
    fd = os.open(f"{engine.url.database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)
    written = threading.Event()

    def writer() -> None:
        with write(engine) as conn:
            conn.execute(text("SELECT 1"))
        written.set()

    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        thread = threading.Thread(target=writer, daemon=True)
        thread.start()
        assert not written.wait(0.1)
        fcntl.flock(fd, fcntl.LOCK_UN)
        assert written.wait(TIMEOUT)
        thread.join(TIMEOUT)
    finally:
        os.close(fd)
        engine.dispose()


# TtlCache and ApiKeyStore


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """Stands in for `time` inside storage.ttl_cache only."""
    fake = FakeClock()
    monkeypatch.setattr(ttl_cache, "time", fake)
    return fake


def _counting_loader(loads: Counter, key: str):
    def load() -> str:
        loads[key] += 1
        return f"{key}{loads[key]}"
    return load


def test_ttl_cache_loads_once_per_ttl_and_after_clear(clock):
    cache: TtlCache[str] = TtlCache(seconds=1.0)
    loads: Counter = Counter()
    load = _counting_loader(loads, "k")
    assert cache.get("k", load) == "k1"
    clock.now += 0.5
    assert cache.get("k", load) == "k1"  # within the TTL: not loaded again
    clock.now += 0.5
    assert cache.get("k", load) == "k2"  # expired
    assert cache.get("k", load) == "k2"
    cache.clear()
    assert cache.get("k", load) == "k3"
    assert loads == {"k": 3}


def test_ttl_cache_expires_in_real_time():
    cache: TtlCache[str] = TtlCache(seconds=0.05)
    loads: Counter = Counter()
    assert cache.get("k", _counting_loader(loads, "k")) == "k1"
    time.sleep(0.08)
    assert cache.get("k", _counting_loader(loads, "k")) == "k2"


def test_ttl_cache_drops_entries_beyond_max_entries(clock):
    cache: TtlCache[str] = TtlCache(seconds=60.0, max_entries=2)
    loads: Counter = Counter()
    for key in ("a", "b", "a"):
        cache.get(key, _counting_loader(loads, key))
    assert loads == {"a": 1, "b": 1}
    cache.get("c", _counting_loader(loads, "c"))  # full: the old entries go
    assert cache.get("a", _counting_loader(loads, "a")) == "a2"
    assert loads == {"a": 2, "b": 1, "c": 1}
    for n in range(50):
        cache.get(f"k{n}", _counting_loader(loads, f"k{n}"))
        assert len(cache._entries) <= 2


def test_ttl_cache_does_not_keep_a_value_loaded_across_a_clear(clock):
    """A read that began before a write's clear() may be stale: it is returned, never cached."""
    cache: TtlCache[str] = TtlCache(seconds=60.0)

    def stale_load() -> str:
        cache.clear()  # a revoke commits and clears while this load is still reading
        return "before-revoke"

    assert cache.get("k", stale_load) == "before-revoke"
    assert cache.get("k", lambda: "after-revoke") == "after-revoke"


def test_api_key_revocation_applies_at_once_here_and_after_the_ttl_elsewhere(engine, clock):
    here = ApiKeyStore(engine)
    elsewhere = ApiKeyStore(engine, cache_seconds=0.05)  # the same database seen from another process
    key_hash = "a" * 64
    assert here.any_exists() is False  # cached until a key is added here
    here.add("key-1", "ci", key_hash, "amm_abc")
    for store in (here, elsewhere):  # warm both caches
        assert store.active_for(key_hash).id == "key-1"
        assert store.any_exists() is True

    assert here.revoke("key-1") is True
    assert here.active_for(key_hash) is None  # refused at once although it was cached
    assert here.any_exists() is True  # revoking the last key leaves the service closed
    assert elsewhere.active_for(key_hash).id == "key-1"  # the other process still serves its cached answer

    clock.now += 0.1
    assert elsewhere.active_for(key_hash) is None

    here.add("key-2", "ci", "b" * 64, "amm_def")  # adding clears the cache too
    assert here.active_for("b" * 64).id == "key-2"
