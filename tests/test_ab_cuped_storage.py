"""CUPED from stored data: an experiment declares its CUPED metrics, outcomes carry each unit's pre-period value,
and the stored sums give the same adjustment as the per-unit arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

from ab_testing import cuped
from ab_testing.errors import InvalidExperimentError
from tests.ab_helpers import general
from tests.test_ab_api import create


def _units(rng: np.random.Generator, n: int, lift: float) -> tuple[np.ndarray, np.ndarray]:
    """Pre-period x and in-experiment y with corr(x, y) ~ 0.9: a unit's spend before and during."""
    x = rng.normal(20, 5, n)
    return x, 2 + 0.9 * x + lift + rng.normal(0, 2.2, n)


def test_stored_pre_period_values_give_the_per_unit_cuped_estimate(ab):
    manager = ab[0]
    experiment_id = manager.create_experiment(general(primary_metric="spend", cuped_metrics=["spend"]))
    rng = np.random.default_rng(4)
    units = {"control": _units(rng, 300, 0.0), "treatment": _units(rng, 300, 0.8)}
    for variant, (x, y) in units.items():
        manager.record_results(experiment_id, [
            {"variant": variant, "success": True, "metrics": {"spend": float(b), "other": 1.0},
             "pre_period": {"spend": float(a)}} for a, b in zip(x, y, strict=True)])
    spend = manager.get_experiment_stats(experiment_id)["comparisons"][0]["metrics"]["spend"]
    expected = cuped.cuped_difference(cuped.CovariateSums.from_values(*units["treatment"]),
                                      cuped.CovariateSums.from_values(*units["control"]))
    assert expected is not None
    assert spend["cuped"]["absolute_lift"] == pytest.approx(expected.diff, rel=1e-9)
    assert spend["cuped"]["variance_ratio"] == pytest.approx(expected.variance_ratio, rel=1e-9)
    rho = np.corrcoef(np.concatenate([units[v][0] for v in units]), np.concatenate([units[v][1] for v in units]))
    assert spend["cuped"]["variance_ratio"] == pytest.approx(1 - rho[0, 1] ** 2, abs=0.05)
    experiment = manager.get_experiment(experiment_id)
    assert experiment["cuped_metrics"] == ["spend"] and experiment["planned_sample_size"] is None


def test_an_undeclared_experiment_has_no_cuped_entry(ab):
    manager = ab[0]
    experiment_id = manager.create_experiment(general(primary_metric="spend"))
    for variant in ("control", "treatment"):
        manager.record_results(experiment_id, [{"variant": variant, "success": True, "metrics": {"spend": v}}
                                               for v in (1.0, 2.0, 4.0)])
    assert "cuped" not in manager.get_experiment_stats(experiment_id)["comparisons"][0]["metrics"]["spend"]


@pytest.mark.parametrize("outcome, reason", [
    ({"metrics": {"spend": 3.0}}, "pre_period needs spend"),
    ({"metrics": {"spend": 3.0, "clicks": 1.0}, "pre_period": {"spend": 2.0, "clicks": 0.0}},
     "pre_period has clicks, not in the experiment's cuped_metrics"),
    ({"metrics": {"clicks": 1.0}, "pre_period": {"spend": 2.0}}, "not among this outcome's metrics"),
])
def test_pre_period_values_must_match_the_declaration(ab_sqlite, outcome, reason):
    manager = ab_sqlite[0]
    experiment_id = manager.create_experiment(general(cuped_metrics=["spend"]))
    with pytest.raises(InvalidExperimentError, match=reason):
        manager.record_results(experiment_id, [{"variant": "control", "success": True, **outcome}])
    assert manager.store.aggregates(experiment_id)["results"] == {}  # nothing of the batch was stored


def test_reserved_names_cannot_be_cuped_metrics(ab_sqlite):
    with pytest.raises(InvalidExperimentError, match="cuped_metrics: rating are not named metrics"):
        ab_sqlite[0].create_experiment(general(cuped_metrics=["rating"]))


def test_the_api_takes_pre_period_values_and_reports_cuped(client):
    experiment_id = create(client, {
        "name": "spend", "variants": [{"name": "a", "model": "fake-model"}, {"name": "b", "model": "fake-model"}],
        "primary_metric": "spend", "cuped_metrics": ["spend"], "planned_sample_size": 1000, "start": True})
    rng = np.random.default_rng(9)
    for variant in ("a", "b"):
        x, y = _units(rng, 40, 0.5 if variant == "b" else 0.0)
        response = client.post(f"/api/experiment/{experiment_id}/record", json={"outcomes": [
            {"variant": variant, "success": True, "metrics": {"spend": float(b)}, "pre_period": {"spend": float(a)}}
            for a, b in zip(x, y, strict=True)]})
        assert response.status_code == 200 and response.json["recorded"] == 40, response.json
    stats = client.get(f"/api/experiment/{experiment_id}/stats").json["stats"]
    spend = stats["comparisons"][0]["metrics"]["spend"]
    assert spend["cuped"]["variance_ratio"] < 0.4
    assert spend["sequential_horizon"] == 1000
    bad = client.post(f"/api/experiment/{experiment_id}/record", json={"outcomes": [
        {"variant": "a", "success": True, "metrics": {"spend": 1.0}}]})
    assert bad.status_code == 400 and bad.json["error"]["code"] == "invalid_experiment"
    assert "outcomes.0.pre_period" in bad.json["error"]["message"]
