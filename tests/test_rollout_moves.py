"""Rollout moves on SQLite and PostgreSQL: workers moving one rollout at once never double-move it; and the
non-inferiority check that gates promotion."""

from __future__ import annotations

import threading

import pytest

from ab_testing.guardrails import ArmCalls, non_inferiority
from ab_testing.rollout_store import RolloutStore
from storage.clock import utcnow

VALUES = {"name": "race", "control": "a", "candidate": "b", "steps": [10, 50, 100], "min_calls_per_step": 1,
          "min_seconds_per_step": 0, "guardrails": {}, "primary_metric": "error_rate", "non_inferiority_margin": None}
WORKERS = 8


def test_concurrent_moves_from_one_state_let_exactly_one_win(engine):
    store = RolloutStore(engine)
    rollout_id = store.create(VALUES, utcnow())
    assert rollout_id is not None and store.create(VALUES, utcnow()) is None  # one rollout routes a control
    seen = store.get(rollout_id)
    events = ["step", "paused", "cancelled", "rolled_back"] * (WORKERS // 4)
    barrier = threading.Barrier(WORKERS)
    won: list[str] = []

    def move(event: str) -> None:
        barrier.wait()
        if store.move(seen, event, utcnow(), {}):
            won.append(event)

    threads = [threading.Thread(target=move, args=(event,)) for event in events]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    timeline = [event["event"] for event in store.get(rollout_id)["timeline"]]
    assert timeline == ["started", won[0]]


def test_a_move_its_status_forbids_changes_nothing(engine):
    store = RolloutStore(engine)
    rollout_id = store.create(VALUES, utcnow())
    assert store.move(store.get(rollout_id), "cancelled", utcnow(), {})
    ended = store.get(rollout_id)
    for event in ("step", "paused", "resumed", "cancelled", "promoted", "rolled_back"):
        assert not store.move(ended, event, utcnow(), {})
    assert [e["event"] for e in store.get(rollout_id)["timeline"]] == ["started", "cancelled"]
    assert store.create(VALUES, utcnow()) is not None  # the control is free again
    assert [r["id"] for r in store.recent(None, 10)][-1] == rollout_id
    assert [r["status"] for r in store.recent("cancelled", 10)] == ["cancelled"]


def _arm(calls: int, errors: int = 0, latencies: tuple[float, ...] = (), costs: tuple[float, ...] = ()) -> ArmCalls:
    return ArmCalls(calls, errors, latencies, costs)


@pytest.mark.parametrize(("candidate", "control", "metric", "margin", "verdict"), [
    (_arm(50), _arm(50), "error_rate", 1.0, "hold"),  # alike, but too few calls to prove it
    (_arm(2000), _arm(2000), "error_rate", 1.0, "pass"),  # alike, and enough calls (no errors still has variance)
    (_arm(2000, 100), _arm(2000, 20), "error_rate", 1.0, "hold"),  # 4 points worse: beyond the margin
    (_arm(2000, 100), _arm(2000, 20), "error_rate", 8.0, "pass"),  # well within an 8-point margin
    (_arm(0), _arm(100), "error_rate", 1.0, "hold"),
    (_arm(400, latencies=(0.5, 0.7) * 200), _arm(400, latencies=(1.0, 1.2) * 200), "latency", 0.0, "pass"),  # better
    (_arm(400, latencies=(1.0, 1.2) * 200), _arm(400, latencies=(1.0, 1.2) * 200), "latency", 0.0, "hold"),
    (_arm(400, latencies=(1.0, 1.2) * 200), _arm(400, latencies=(1.0, 1.2) * 200), "latency", 0.1, "pass"),
    (_arm(400, costs=(0.02,) * 400), _arm(400, costs=(0.01,) * 400), "cost", 0.2, "hold"),  # twice the price
    (_arm(400, costs=(0.01,) * 400), _arm(400, costs=(0.01,) * 400), "cost", 0.2, "pass"),  # no variation: exact
    (_arm(1, costs=(0.01,)), _arm(400, costs=(0.01,) * 400), "cost", 0.2, "hold"),
])
def test_non_inferiority_passes_only_when_proven(candidate, control, metric, margin, verdict):
    check = non_inferiority(candidate, control, metric, margin, alpha=0.05, planned_n=200)
    assert (check.guardrail, check.verdict) == (f"primary_{metric}", verdict)
