"""TrafficRouter: sticky persisted assignment, weight changes for new users only, and the managed test call."""

from __future__ import annotations

import math
import threading

import pytest

from ab_testing.errors import ExperimentNotRunningError, InvalidExperimentError, InvalidTransitionError
from models.errors import ProviderUnavailableError
from models.request_log import RequestLogRepository
from storage.database import create_db_engine, upgrade_schema
from tests.ab_helpers import build, general


def test_thousand_users_split_evenly_and_stick_after_a_restart(sqlite_url, settings):
    engine = create_db_engine(sqlite_url)
    upgrade_schema(engine)
    manager, router, _ = build(engine, settings)
    experiment_id = manager.create_experiment("split", "model-a", "model-b")
    first = {f"user-{i}": router.assign_variant(experiment_id, f"user-{i}") for i in range(1000)}
    engine.dispose()
    n_a = sum(1 for v in first.values() if v == "A")
    assert abs(n_a - 500) < 3.3 * math.sqrt(1000 * 0.25)
    assert router.assign_variant(experiment_id, "user-7") == first["user-7"]  # same process, same answer

    restarted_engine = create_db_engine(sqlite_url)  # a new process: new engine, manager and router
    _, restarted, _ = build(restarted_engine, settings)
    assert {u: restarted.assign_variant(experiment_id, u) for u in first} == first
    restarted_engine.dispose()


def test_changing_weights_moves_only_new_users(ab):
    manager, router, _ = ab
    experiment_id = manager.create_experiment("reweight", "model-a", "model-b")
    before = {f"u{i}": router.assign_variant(experiment_id, f"u{i}") for i in range(60)}
    assert set(before.values()) == {"A", "B"}
    manager.set_weights(experiment_id, {"A": 0, "B": 1})
    assert {u: router.assign_variant(experiment_id, u) for u in before} == before
    assert {router.assign_variant(experiment_id, f"new-{i}") for i in range(30)} == {"B"}
    stats = manager.get_experiment_stats(experiment_id)
    assert [v["weight"] for v in stats["variants"]] == [0.0, 1.0]
    assert sum(v["assigned"] for v in stats["variants"]) == 90


def test_concurrent_first_assignments_agree(ab):
    manager, _, _ = ab
    experiment_id = manager.create_experiment("race", "model-a", "model-b")
    seen: list[str] = []

    def claim(variant: str) -> None:
        seen.append(manager.store.assign(experiment_id, "racer", variant))

    threads = [threading.Thread(target=claim, args=("AB"[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and len(set(seen)) == 1


def test_test_call_uses_the_variants_model_and_params_and_records_the_exposure(ab_sqlite):
    manager, router, models = ab_sqlite
    spec = general(variants=[
        {"name": "control", "model": "model-a", "weight": 0},
        {"name": "treatment", "model": "model-b", "weight": 1,
         "params": {"system": "Be brief.", "temperature": 0.2, "max_tokens": 50}},
    ])
    experiment_id = manager.create_experiment(spec)
    models["model-b"].enqueue("short answer here")
    served = router.run_experiment(experiment_id, "user-1", "Explain hashing")
    assert served["variant"] == "treatment" and served["model"] == "model-b" and served["in_experiment"]
    assert served["response"] == "short answer here"
    call = models["model-b"].calls[-1]
    assert (call.system, call.temperature, call.max_tokens) == ("Be brief.", 0.2, 50)
    row = RequestLogRepository(manager.engine).get(served["request_id"])
    assert row["source"] == "experiment" and row["user_id"] == "user-1"
    treatment = manager.get_experiment_stats(experiment_id)["variants"][1]
    assert treatment["exposures"] == 1
    assert treatment["latency"]["mean"] == pytest.approx(row["latency"])
    assert treatment["cost"]["mean"] == pytest.approx(row["cost"])
    assert treatment["tokens"]["mean"] == row["total_tokens"] == served["tokens"]


def test_users_outside_coverage_get_the_control_and_are_not_exposed(ab_sqlite):
    manager, router, models = ab_sqlite
    experiment_id = manager.create_experiment(general(coverage=0))
    served = router.run_experiment(experiment_id, "someone", "hi")
    assert served["variant"] is None and served["in_experiment"] is False and served["model"] == "model-a"
    stats = manager.get_experiment_stats(experiment_id)
    assert [v["exposures"] for v in stats["variants"]] == [0, 0]
    assert [v["assigned"] for v in stats["variants"]] == [0, 0]


def test_a_failed_call_is_recorded_as_an_errored_exposure(ab_sqlite):
    manager, router, models = ab_sqlite
    experiment_id = manager.create_experiment(general(variants=[
        {"name": "control", "model": "model-a", "weight": 1}, {"name": "treatment", "model": "model-b", "weight": 0},
    ]))
    models["model-a"].enqueue(ProviderUnavailableError("down"))
    with pytest.raises(ProviderUnavailableError):
        router.run_experiment(experiment_id, "u", "hi")
    control = manager.get_experiment_stats(experiment_id)["variants"][0]
    assert control["exposures"] == 1 and control["latency"]["n"] == 0
    assert RequestLogRepository(manager.engine).count(source="experiment", status="error") == 1


def test_traffic_only_while_running(ab_sqlite):
    manager, router, _ = ab_sqlite
    experiment_id = manager.create_experiment(general(start=False))
    with pytest.raises(ExperimentNotRunningError):
        router.run_experiment(experiment_id, "u", "hi")
    manager.start_experiment(experiment_id)
    manager.pause_experiment(experiment_id)
    with pytest.raises(ExperimentNotRunningError):
        router.assign_variant(experiment_id, "u")


def test_original_route_request_and_generate_with_routing(ab_sqlite):
    _, router, models = ab_sqlite
    variant, model = router.route_request("user-9", "model-a", "model-b")
    assert (variant, model.name) in {("A", "model-a"), ("B", "model-b")}
    assert all(router.route_request("user-9", "model-a", "model-b")[0] == variant for _ in range(5))
    assert router.route_request("user-9", "model-a", "model-b", split=100)[0] == "A"
    assert router.route_request("user-9", "model-a", "model-b", split=0)[0] == "B"
    split = [router.route_request(f"u{i}", "model-a", "model-b")[0] for i in range(1000)]
    assert abs(split.count("A") - 500) < 3.3 * math.sqrt(250)
    result = router.generate_with_routing("user-9", "hello there", "model-a", "model-b")
    assert result["variant"] == variant and result["model"] == model.name
    assert result["response"] == "echo: hello there"
    assert {"tokens", "latency", "cost"} <= result.keys()
    assert RequestLogRepository(router.experiments.engine).get(result["request_id"])["source"] == "experiment"


@pytest.mark.parametrize("weights", [{"A": float("nan")}, {"A": -1}, {"A": 0, "B": 0}, {"A": True}])
def test_invalid_weights_are_refused(ab_sqlite, weights):
    manager, _, _ = ab_sqlite
    experiment_id = manager.create_experiment("w", "model-a", "model-b")
    with pytest.raises(InvalidExperimentError):
        manager.set_weights(experiment_id, weights)
    assert [v["weight"] for v in manager.get_experiment(experiment_id)["variants"]] == [1.0, 1.0]


def test_a_completed_experiment_cannot_be_reweighted(ab_sqlite):
    manager, _, _ = ab_sqlite
    experiment_id = manager.create_experiment("w", "model-a", "model-b")
    manager.complete_experiment(experiment_id)
    with pytest.raises(InvalidTransitionError):
        manager.set_weights(experiment_id, {"B": 3})
