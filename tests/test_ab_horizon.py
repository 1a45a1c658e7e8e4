"""The mSPRT calibrated to a planned sample size: the recursion against Monte Carlo, the A/A rate it buys, and its
place in the analysis.

The full A/A figures (20,000 simulated experiments per row) are in benchmarks/bench_sequential.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from ab_testing import horizon as hz
from ab_testing import sequential as sq
from ab_testing.analysis import analyze
from benchmarks.bench_ab_calibration import aa_experiment
from benchmarks.bench_sequential import run


def _brownian_max_log_lambda(looks: int, simulations: int, alpha: float, seed: int) -> np.ndarray:
    """max over `looks` equal steps of the horizon-tuned statistic, per simulated A/A path of W."""
    rng = np.random.default_rng(seed)
    c = hz.mixture_constant(alpha)
    w = rng.normal(scale=math.sqrt(1 / looks), size=(simulations, looks)).cumsum(axis=1)
    s = np.arange(1, looks + 1) / looks
    return (-0.5 * np.log(1 + c * s) + c * w**2 / (2 * (1 + c * s))).max(axis=1)


def test_recursion_matches_monte_carlo_for_the_same_looks():
    maxima = _brownian_max_log_lambda(50, 100_000, 0.05, seed=5)
    levels = np.array([1.0, 2.0, 3.0])
    computed = hz.crossing_probabilities(levels, 0.05, looks=50, continuous=False)
    for level, probability in zip(levels, computed, strict=True):
        simulated = (maxima >= level).mean()
        assert probability == pytest.approx(simulated, abs=4 * math.sqrt(simulated * (1 - simulated) / 100_000))


def test_continuous_correction_agrees_with_four_times_finer_looks():
    levels = np.array([1.0, 2.2, 4.0])
    coarse = hz.crossing_probabilities(levels, 0.05)
    fine = hz.crossing_probabilities(levels, 0.05, looks=4 * hz.LOOKS)
    assert coarse == pytest.approx(fine, rel=5e-3)
    assert (hz.crossing_probabilities(levels, 0.05, continuous=False) < coarse).all()


def test_threshold_spends_alpha_under_continuous_looks_and_sits_below_villes():
    log_threshold = hz.horizon_log_threshold(0.05)
    assert hz.horizon_pvalue(log_threshold, 0.05) == pytest.approx(0.05, rel=0.01)
    assert 2.0 < log_threshold < math.log(20)  # 1/alpha is what the open-ended test needs
    assert hz.horizon_pvalue(0.0, 0.05) == 1.0
    levels = [0.5, 1, 2, 3, 5, 8, 12, 16, 20]
    p_values = [hz.horizon_pvalue(level, 0.05) for level in levels]
    assert p_values == sorted(p_values, reverse=True)
    assert all(p <= math.exp(-level) for p, level in zip(p_values, levels, strict=True))


def test_aa_rate_with_a_planned_size_is_alpha_within_the_band():
    """20,000 A/A paths read every 1% of the planned size: 5% +- 1.5%, where the open-ended test gives ~1.5%."""
    maxima = _brownian_max_log_lambda(100, 20_000, 0.05, seed=8)
    calibrated = (maxima >= hz.horizon_log_threshold(0.05)).mean()
    assert 0.035 <= calibrated <= 0.065
    assert (maxima >= math.log(20)).mean() < 0.025


def test_aa_on_simulated_experiments_quick_run():
    report = run(1000, seed=12)
    for name in ("A/A conversion p=0.10", "A/A lognormal mean"):
        # 1,000 simulations: sd of a rate near 0.04 is ~0.006; the band's ends are > 2 sd away from the true rate.
        assert 0.02 <= report[name]["horizon"] <= 0.065
        assert report[name]["sequential"] < report[name]["horizon"]
    power = report["power conversion 0.10->0.12"]
    assert power["horizon"] > power["sequential"]  # spending all of alpha buys power


def test_sequential_test_uses_the_horizon_until_it_is_passed():
    open_p, open_cs = sq.sequential_test(0.012, 4e-5, 8000, 0.05)
    planned_p, planned_cs = sq.sequential_test(0.012, 4e-5, 8000, 0.05, horizon=10_000)
    assert planned_p < open_p and planned_cs[1] - planned_cs[0] < open_cs[1] - open_cs[0]
    assert (planned_p < 0.05) == (not planned_cs[0] <= 0 <= planned_cs[1])
    tau2 = sq.mixing_variance(4e-5, 8000, 0.05, 10_000)
    assert planned_p == pytest.approx(hz.horizon_pvalue(sq.log_likelihood_ratio(0.012, 4e-5, tau2), 0.05))
    assert sq.sequential_test(0.012, 4e-5, 12_000, 0.05, horizon=10_000) == sq.sequential_test(
        0.012, 4e-5, 12_000, 0.05)


def test_analysis_calibrates_each_pair_to_its_share_of_the_planned_size():
    aggregates = {"results": {"A": {"n": 1000, "successes": 100, "rating": {"n": 0, "sum": 0.0, "sum_sq": 0.0}},
                              "B": {"n": 1000, "successes": 128, "rating": {"n": 0, "sum": 0.0, "sum_sq": 0.0}},
                              "C": {"n": 1000, "successes": 101, "rating": {"n": 0, "sum": 0.0, "sum_sq": 0.0}}},
                  "metrics": {}}
    plain = analyze(aa_experiment(3), aggregates)["comparisons"]
    planned = analyze({**aa_experiment(3), "planned_sample_size": 6000}, aggregates)["comparisons"]
    for before, after in zip(plain, planned, strict=True):
        conversion = after["metrics"]["conversion"]
        assert conversion["sequential_horizon"] == 4000  # two of three equal arms
        assert before["metrics"]["conversion"]["sequential_horizon"] is None
        expected_p, _ = sq.sequential_test(conversion["absolute_lift"], sq.proportion_variance(
            {"B": 128, "C": 101}[after["variant"]], 1000, 100, 1000), 2000, 0.05, horizon=4000)
        assert conversion["sequential_p_value"] == pytest.approx(expected_p, rel=1e-12)
        assert conversion["sequential_p_value"] <= before["metrics"]["conversion"]["sequential_p_value"]
    assert planned[0]["metrics"]["conversion"]["sequential_p_value"] < plain[0]["metrics"]["conversion"][
        "sequential_p_value"] < 1
