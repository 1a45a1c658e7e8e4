"""The generic run heartbeat (storage/heartbeat.py) that workflow and benchmark runners share."""

from __future__ import annotations

import os
import threading
import time

from storage.heartbeat import RunHeartbeat
from storage.run_sweeper import RunSweeper
from tests.waiting import wait_for


def test_beats_for_the_owner_only_while_driving_and_survive_a_failing_beat() -> None:
    beats: list[str] = []
    failed = threading.Event()

    def beat(owner: str) -> None:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("database hiccup")
        beats.append(owner)

    hb = RunHeartbeat(beat, name="test-heartbeat", interval=0.02)
    with hb.driving() as owner:
        assert hb._thread is not None and hb._thread.name == "test-heartbeat"
        wait_for(lambda: len(beats) >= 2)  # the first beat failed; the thread kept beating
    assert set(beats) == {owner} and failed.is_set()
    wait_for(lambda: hb._thread is None)  # nothing in flight: the thread ends
    count = len(beats)
    time.sleep(0.1)
    assert len(beats) == count


def test_a_forked_process_gets_its_own_owner_id_and_heartbeat_thread(monkeypatch) -> None:
    hb = RunHeartbeat(lambda _owner: None, interval=0.05)
    parent = hb.owner
    assert hb.owner == parent and f":{os.getpid()}:" in parent
    assert RunHeartbeat(lambda _owner: None).owner != parent  # runners of one process tell themselves apart
    with hb.driving() as owner:
        parent_thread = hb._thread
    assert owner == parent and parent_thread is not None

    monkeypatch.setattr(os, "getpid", lambda: 4242)  # a worker forked from the preloaded app, parent thread and all
    child = hb.owner
    assert child != parent and ":4242:" in child and len(child) <= 64
    with hb.driving() as owner:
        assert owner == child and hb._thread not in (None, parent_thread)


def _sweeper_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t.name == "run-sweeper"]


def test_the_sweeper_keeps_sweeping_past_a_failing_reclaim() -> None:
    sweeps: list[str] = []

    def flaky() -> None:
        sweeps.append("flaky")
        if sweeps.count("flaky") == 1:
            raise RuntimeError("database hiccup")

    sweeper = RunSweeper((flaky, lambda: sweeps.append("ok")), interval=0.02)
    sweeper.ensure_started()
    wait_for(lambda: sweeps.count("flaky") >= 2)  # the next sweep tried again
    assert sweeps[:2] == ["flaky", "ok"]  # the failure did not keep the other reclaim from running


def test_the_sweeper_runs_one_thread_per_process_and_ends_with_its_owner(monkeypatch) -> None:
    sweeps: list[int] = []
    sweeper = RunSweeper((lambda: sweeps.append(os.getpid()),), interval=0.02)
    before = set(threading.enumerate())
    sweeper.ensure_started()
    sweeper.ensure_started()  # the same process: still one thread
    wait_for(lambda: len(sweeps) >= 2)
    assert len(_sweeper_threads(before)) == 1

    monkeypatch.setattr(os, "getpid", lambda: 4242)  # a forked worker inherits no thread: it starts its own
    sweeper.ensure_started()
    started = _sweeper_threads(before)
    assert len(started) == 2

    del sweeper  # the threads hold it weakly: they end once it is gone
    for thread in started:
        thread.join(5)
        assert not thread.is_alive()


def test_a_stopped_sweeper_ends_its_thread_and_a_failure_streak_logs_one_traceback(caplog) -> None:
    sweeps: list[str] = []

    def down() -> None:
        sweeps.append("down")
        raise RuntimeError("relation does not exist")

    sweeper = RunSweeper((down,), interval=0.01)
    before = set(threading.enumerate())
    sweeper.ensure_started()
    wait_for(lambda: len(sweeps) >= 3)
    sweeper.stop()
    for thread in _sweeper_threads(before):
        thread.join(5)
        assert not thread.is_alive()
    failures = [record for record in caplog.records if "Reclaiming abandoned runs failed" in record.getMessage()]
    assert len(failures) >= 3 and [bool(record.exc_info) for record in failures[:2]] == [True, False]
