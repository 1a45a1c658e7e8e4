"""ExperimentManager: original and general forms, lifecycle, outcomes, idempotency, and the decisions it makes."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from ab_testing.errors import (
    ExperimentNotFoundError,
    ExperimentNotRunningError,
    InvalidExperimentError,
    InvalidTransitionError,
    UnknownVariantError,
)
from tests.ab_helpers import general, outcomes

REFERENCE = json.loads((Path(__file__).parent / "data" / "ab_reference.json").read_text())




@pytest.fixture
def manager(ab):
    return ab[0]


@pytest.fixture
def sqlite_manager(ab_sqlite):
    return ab_sqlite[0]


def test_original_create_record_and_stats(manager):
    experiment_id = manager.create_experiment("checkout", "model-a", "model-b")
    experiment = manager.get_experiment(experiment_id)
    assert experiment["status"] == "running" and experiment["control"] == "A"
    assert [(v["name"], v["model"]) for v in experiment["variants"]] == [("A", "model-a"), ("B", "model-b")]
    first = manager.record_result(experiment_id, "A", True, 4)
    second = manager.record_result(experiment_id, "B", False)
    assert isinstance(first, int) and second != first
    stats = manager.get_experiment_stats(experiment_id)
    assert stats["variant_a"] == {"name": "A", "model": "model-a", "total": 1, "successes": 1,
                                  "conversion_rate": 100.0, "avg_rating": 4.0}
    assert stats["variant_b"]["conversion_rate"] == 0.0 and stats["variant_b"]["total"] == 1
    # The original named A the winner here; one result per arm proves nothing.
    assert stats["winner"] is None and stats["decision"] == "insufficient_data"
    assert stats["status"] == "running"


def test_general_form_starts_as_draft_and_follows_the_lifecycle(manager):
    experiment_id = manager.create_experiment(general(start=False))
    assert manager.get_experiment(experiment_id)["status"] == "draft"
    with pytest.raises(ExperimentNotRunningError):
        manager.record_result(experiment_id, "control", True)
    with pytest.raises(InvalidTransitionError):
        manager.pause_experiment(experiment_id)
    assert manager.start_experiment(experiment_id)["status"] == "running"
    manager.record_result(experiment_id, "control", True)
    assert manager.pause_experiment(experiment_id)["status"] == "paused"
    with pytest.raises(ExperimentNotRunningError) as refused:
        manager.record_result(experiment_id, "control", True)
    assert refused.value.http_status == 409 and refused.value.details["status"] == "paused"
    assert manager.start_experiment(experiment_id)["status"] == "running"
    completed = manager.complete_experiment(experiment_id)
    assert completed["status"] == "completed" and completed["completed_at"]
    for action in ("start", "pause", "complete"):
        with pytest.raises(InvalidTransitionError):
            manager.transition(experiment_id, action)
    with pytest.raises(ExperimentNotRunningError):
        manager.record_result(experiment_id, "control", True)
    assert manager.get_experiment_stats(experiment_id)["variants"][0]["n"] == 1


def test_the_multiple_testing_choice_is_kept_and_applied(manager):
    """Benjamini-Hochberg, when chosen, adjusts the stats' p-values; Holm stays the default."""
    from ab_testing.statistics import bh_adjust, holm_adjust

    three = [{"name": name, "model": "model-a"} for name in ("control", "b", "c")]
    chosen = {kind: manager.create_experiment(general(variants=three, multiple_testing=kind, name=kind))
              for kind in ("holm", "bh")}
    default = manager.create_experiment(general(variants=three, name="default"))
    assert manager.get_experiment(default)["multiple_testing"] == "holm"
    for kind, experiment_id in chosen.items():
        assert manager.get_experiment(experiment_id)["multiple_testing"] == kind
        for index in range(90):  # b and c convert about equally, both more than control: BH and Holm differ
            variant = ("control", "b", "c")[index % 3]
            manager.record_result(experiment_id, variant, index % (9 if variant == "control" else 2) == 0)
        comparisons = manager.get_experiment_stats(experiment_id)["comparisons"]
        raw = [c["metrics"]["conversion"]["p_value"] for c in comparisons]
        adjusted = [c["metrics"]["conversion"]["p_value_adjusted"] for c in comparisons]
        assert adjusted == pytest.approx((bh_adjust if kind == "bh" else holm_adjust)(raw))
        assert bh_adjust(raw) != pytest.approx(holm_adjust(raw))  # the data tell the two procedures apart


def test_unknown_experiment_and_variant(sqlite_manager):
    assert sqlite_manager.get_experiment_stats(999) is None
    with pytest.raises(ExperimentNotFoundError):
        sqlite_manager.record_result(999, "A", True)
    with pytest.raises(ExperimentNotFoundError):
        sqlite_manager.start_experiment(999)
    experiment_id = sqlite_manager.create_experiment("x", "model-a", "model-b")
    with pytest.raises(UnknownVariantError) as unknown:
        sqlite_manager.record_result(experiment_id, "C", True)
    assert unknown.value.http_status == 404 and unknown.value.details["variants"] == ["A", "B"]


@pytest.mark.parametrize(("spec", "field"), [
    (general(control="nope"), "control"),
    (general(variants=[{"name": "a", "model": "m"}]), "variants"),
    (general(variants=[{"name": "a", "model": "m"}, {"name": "a", "model": "n"}]), "unique"),
    (general(variants=[{"name": "a", "model": "m", "weight": -1}, {"name": "b", "model": "n"}]), "weight"),
    (general(variants=[{"name": "a", "model": "m", "params": {"user_id": "x"}}, {"name": "b", "model": "n"}]),
     "params"),
    (general(coverage=1.5), "coverage"),
    (general(alpha=0), "alpha"),
])
def test_invalid_definitions_name_the_field(sqlite_manager, spec, field):
    with pytest.raises(InvalidExperimentError) as invalid:
        sqlite_manager.create_experiment(spec)
    assert field in str(invalid.value)


def test_outcome_id_makes_recording_idempotent(manager):
    experiment_id = manager.create_experiment(general())
    first = manager.record_results(experiment_id, [
        {"variant": "treatment", "success": True, "metrics": {"quality": 0.9}, "outcome_id": "o-1"},
    ])
    again = manager.record_results(experiment_id, [
        {"variant": "treatment", "success": True, "metrics": {"quality": 0.9}, "outcome_id": "o-1"},
        {"variant": "treatment", "success": False, "outcome_id": "o-2"},
    ])
    assert again[0] == {"result_id": first[0]["result_id"], "duplicate": True}
    assert again[1]["duplicate"] is False
    treatment = manager.get_experiment_stats(experiment_id)["variants"][1]
    assert treatment["n"] == 2 and treatment["successes"] == 1
    assert treatment["quality"]["n"] == 1  # the retried metric was not counted twice


def test_concurrent_retries_of_one_outcome_store_it_once(manager):
    experiment_id = manager.create_experiment(general())
    ids: list[int] = []

    def retry() -> None:
        ids.append(manager.record_result(experiment_id, "control", True, outcome_id="same"))

    threads = [threading.Thread(target=retry) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(ids)) == 1 and len(ids) == 8
    assert manager.get_experiment_stats(experiment_id)["variants"][0]["n"] == 1


def test_real_difference_matches_statsmodels_and_names_the_winner(manager):
    case = REFERENCE["ztest"][0]  # 150/1000 vs 100/1000
    experiment_id = manager.create_experiment("real", "model-a", "model-b")
    manager.record_results(experiment_id, outcomes("A", case["n_c"], case["x_c"])
                           + outcomes("B", case["n_t"], case["x_t"]))
    stats = manager.get_experiment_stats(experiment_id)
    conversion = stats["comparisons"][0]["metrics"]["conversion"]
    assert conversion["p_value"] == pytest.approx(case["p_value"], abs=1e-6)
    assert conversion["absolute_lift_ci"] == pytest.approx(case["diff_ci"], abs=1e-6)
    assert conversion["chance_to_win"] > 0.99
    assert stats["decision"] == "winner" and stats["winner"] == "B"
    assert stats["variant_b"]["conversion_rate"] == pytest.approx(15.0)
    assert stats["health"]["srm"]["flagged"] is False and stats["health"]["enough_data"] is True
    # Evan Miller at p=0.10, delta=0.05: (1.96*sqrt(.18) + 0.8416*sqrt(.09+.1275))^2 / .0025 = 599.3 -> 600
    assert stats["health"]["required_sample_size_per_arm"] == 600


def test_a_few_dozen_results_name_no_winner(sqlite_manager):
    experiment_id = sqlite_manager.create_experiment("small", "model-a", "model-b")
    sqlite_manager.record_results(experiment_id, outcomes("A", 30, 8) + outcomes("B", 30, 20))
    stats = sqlite_manager.get_experiment_stats(experiment_id)
    assert stats["comparisons"][0]["metrics"]["conversion"]["p_value"] < 0.05  # "significant", yet too little data
    assert stats["decision"] == "insufficient_data" and stats["winner"] is None


def test_three_variants_significant_only_before_holm_is_not_a_winner(sqlite_manager):
    spec = general(variants=[{"name": "A", "model": "model-a"}, {"name": "B", "model": "model-b"},
                             {"name": "C", "model": "model-c"}])
    experiment_id = sqlite_manager.create_experiment(spec)
    sqlite_manager.record_results(experiment_id, outcomes("A", 1000, 100) + outcomes("B", 1000, 130)
                           + outcomes("C", 1000, 100))
    stats = sqlite_manager.get_experiment_stats(experiment_id)
    b_vs_a = stats["comparisons"][0]["metrics"]["conversion"]
    assert b_vs_a["p_value"] < 0.05 <= b_vs_a["p_value_adjusted"]
    assert b_vs_a["p_value_adjusted"] == pytest.approx(2 * b_vs_a["p_value"])
    assert stats["decision"] == "no_significant_difference" and stats["winner"] is None
    # The same two arms alone would name B: it is the correction that holds it back.
    pair = sqlite_manager.create_experiment("pair", "model-a", "model-b")
    sqlite_manager.record_results(pair, outcomes("A", 1000, 100) + outcomes("B", 1000, 130))
    assert sqlite_manager.get_experiment_stats(pair)["winner"] == "B"


def test_sample_ratio_mismatch_blocks_the_winner(sqlite_manager):
    experiment_id = sqlite_manager.create_experiment("srm", "model-a", "model-b")
    sqlite_manager.record_results(experiment_id, outcomes("A", 1000, 100) + outcomes("B", 800, 160))
    stats = sqlite_manager.get_experiment_stats(experiment_id)
    assert stats["health"]["srm"]["p_value"] < 0.001
    assert stats["decision"] == "sample_ratio_mismatch" and stats["winner"] is None


def test_ratings_give_scipys_welch_p_value(sqlite_manager):
    case = REFERENCE["welch"][0]
    experiment_id = sqlite_manager.create_experiment(general(primary_metric="rating", min_sample_size=10))
    sqlite_manager.record_results(
        experiment_id,
        [{"variant": "control", "success": True, "rating": r} for r in case["control"]]
        + [{"variant": "treatment", "success": True, "rating": r} for r in case["treatment"]],
    )
    stats = sqlite_manager.get_experiment_stats(experiment_id)
    rating = stats["comparisons"][0]["metrics"]["rating"]
    assert rating["p_value"] == pytest.approx(case["p_value"], abs=1e-6)
    assert rating["df"] == pytest.approx(case["df"], abs=1e-6)
    expected = "winner" if case["p_value"] < 0.05 else "no_significant_difference"
    assert stats["decision"] == expected
    control = stats["variants"][0]["rating"]
    assert control["n"] == len(case["control"])
    assert control["mean"] == pytest.approx(sum(case["control"]) / len(case["control"]))


def test_named_metrics_are_compared_with_lower_cost_winning(sqlite_manager):
    experiment_id = sqlite_manager.create_experiment(general(primary_metric="cost", min_sample_size=20, mde=0.001))
    sqlite_manager.record_results(
        experiment_id,
        [{"variant": "control", "success": True, "metrics": {"cost": 0.010 + i * 1e-4, "quality": 1}}
         for i in range(30)]
        + [{"variant": "treatment", "success": True, "metrics": {"cost": 0.005 + i * 1e-4, "quality": 2}}
           for i in range(30)],
    )
    stats = sqlite_manager.get_experiment_stats(experiment_id)
    cost = stats["comparisons"][0]["metrics"]["cost"]
    assert cost["higher_is_better"] is False and cost["chance_to_win"] > 0.99
    assert cost["absolute_lift"] == pytest.approx(-0.005)
    assert "quality" in stats["comparisons"][0]["metrics"]
    assert stats["decision"] == "winner" and stats["winner"] == "treatment"
    assert stats["health"]["required_sample_size_per_arm"] is not None


def test_a_custom_primary_metric_without_data_is_insufficient_not_an_error(sqlite_manager):
    experiment_id = sqlite_manager.create_experiment(general(primary_metric="helpfulness"))
    sqlite_manager.record_result(experiment_id, "control", True)
    stats = sqlite_manager.get_experiment_stats(experiment_id)
    assert stats["decision"] == "insufficient_data"
    assert stats["comparisons"][0]["metrics"]["helpfulness"]["p_value"] is None
    assert stats["variants"][0]["helpfulness"]["n"] == 0
