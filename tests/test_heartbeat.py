"""The generic run heartbeat (storage/heartbeat.py) that workflow and benchmark runners share."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

from storage import heartbeat
from storage.heartbeat import RunHeartbeat


def _wait_for(condition: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_beats_for_the_owner_only_while_driving_and_survive_a_failing_beat(monkeypatch) -> None:
    monkeypatch.setattr(heartbeat, "HEARTBEAT_SECONDS", 0.02)
    beats: list[str] = []
    failed = threading.Event()

    def beat(owner: str) -> None:
        if not failed.is_set():
            failed.set()
            raise RuntimeError("database hiccup")
        beats.append(owner)

    hb = RunHeartbeat(beat, name="test-heartbeat")
    with hb.driving() as owner:
        assert hb._thread is not None and hb._thread.name == "test-heartbeat"
        _wait_for(lambda: len(beats) >= 2)  # the first beat failed; the thread kept beating
    assert set(beats) == {owner} and failed.is_set()
    _wait_for(lambda: hb._thread is None)  # nothing in flight: the thread ends
    count = len(beats)
    time.sleep(0.1)
    assert len(beats) == count


def test_a_forked_process_gets_its_own_owner_id_and_heartbeat_thread(monkeypatch) -> None:
    monkeypatch.setattr(heartbeat, "HEARTBEAT_SECONDS", 0.05)
    hb = RunHeartbeat(lambda _owner: None)
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
