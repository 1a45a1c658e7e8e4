"""Anytime-valid statistics (mSPRT, sequential SRM), Benjamini-Hochberg, and their place in the analysis output.

The full A/A figures (20,000 simulations per row) are in benchmarks/bench_sequential; a quick run of the same code
is here, and the test calibrated to a planned sample size in test_ab_horizon.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError
from scipy import special, stats

from ab_testing import sequential as sq
from ab_testing import statistics as st
from ab_testing.analysis import analyze
from ab_testing.spec import ExperimentSpec
from benchmarks.bench_ab_calibration import aa_experiment
from benchmarks.bench_sequential import msprt_log_lr, run


def test_likelihood_ratio_pvalue_and_confidence_sequence_by_hand():
    # d = 0.02, V = 1e-4, tau2 = 4e-4: Lambda = sqrt(1/5) * e^1.6 = 2.2150634;
    # half-width = sqrt(1.25e-4 * (log 5 - 2 log 0.05)) = sqrt(1.25e-4 * 7.6009024) = 0.0308239.
    assert math.exp(sq.log_likelihood_ratio(0.02, 1e-4, 4e-4)) == pytest.approx(2.2150634, abs=1e-6)
    assert sq.always_valid_pvalue(0.02, 1e-4, 4e-4) == pytest.approx(1 / 2.2150634, abs=1e-6)
    low, high = sq.confidence_sequence(0.02, 1e-4, 4e-4, 0.05)
    assert (low, high) == pytest.approx((0.02 - 0.0308239, 0.02 + 0.0308239), abs=1e-6)
    assert sq.always_valid_pvalue(0.0, 1e-4, 4e-4) == 1.0  # no evidence: Lambda = sqrt(1/5) < 1


def test_mixing_variance_is_growthbooks_rho_for_the_planned_sample_size():
    # rho^2 = (-2 log 0.05 + log(1 - 2 log 0.05)) / 5000 = (5.9914645 + 1.9446900) / 5000; sigma^2 = V * n = 2.
    assert sq.mixing_variance(2e-4, 10_000, 0.05, 5000) == pytest.approx(7.9361545 / 5000 * 2, rel=1e-7)


@pytest.mark.parametrize("diff", [0.0, 0.01, 0.015, 0.02, -0.03, 0.05])
def test_pvalue_below_alpha_exactly_when_the_confidence_sequence_excludes_zero(diff):
    p_value, (low, high) = sq.sequential_test(diff, 4e-5, 8000, 0.05)
    assert (p_value < 0.05) == (not low <= 0 <= high)


def test_confidence_sequence_is_wider_than_the_fixed_horizon_interval():
    _, (low, high) = sq.sequential_test(0.01, 4e-5, 8000, 0.05)
    assert high - low > 2 * 1.96 * math.sqrt(4e-5)


def test_running_minimum_never_rises():
    assert sq.running_minimum([0.9, 0.2, 0.5, 0.1, 0.3]) == [0.9, 0.2, 0.2, 0.1, 0.1]
    assert sq.running_minimum([0.4]) == [0.4]


@pytest.mark.parametrize("variance, n", [(None, 100), (0.0, 100), (1e-4, 0)])
def test_undefined_without_variance_or_data(variance, n):
    assert sq.sequential_test(0.01, variance, n, 0.05) == (None, None)


def test_proportion_variance_is_unpooled():
    assert sq.proportion_variance(10, 100, 20, 100) == pytest.approx(0.1 * 0.9 / 100 + 0.2 * 0.8 / 100)
    assert sq.proportion_variance(0, 0, 20, 100) is None


def test_benchmark_arrays_agree_with_the_library():
    rng = np.random.default_rng(3)
    diff, variance, n = rng.normal(0, 0.02, 50), rng.uniform(1e-5, 1e-3, 50), rng.integers(100, 10_000, 50)
    expected = [sq.log_likelihood_ratio(d, v, sq.mixing_variance(v, int(k), 0.05))
                for d, v, k in zip(diff, variance, n, strict=True)]
    assert msprt_log_lr(diff, variance, n) == pytest.approx(expected, rel=1e-9)


def test_aa_under_peeking_sequential_stays_below_alpha_fixed_horizon_does_not():
    report = run(500, seed=11)
    for name in ("A/A conversion p=0.10", "A/A lognormal mean"):
        # 500 simulations: sd of a rate near 0.02 is ~0.006, so 0.065 is > 5 sigma above it.
        assert report[name]["sequential"] <= 0.065
        assert report[name]["fixed_peeking"] > 0.2
    assert report["power conversion 0.10->0.12"]["sequential"] > 0.5


def test_sequential_srm_quiet_on_balanced_counts_alarms_on_imbalance():
    assert sq.srm_sequential_pvalue([5000, 5000], [1, 1]) == 1.0
    assert sq.srm_sequential_pvalue([5030, 4970, 5010], [1, 1, 1]) > 0.5
    assert sq.srm_sequential_pvalue([5000, 5600], [1, 1]) < 0.001
    assert sq.srm_sequential_pvalue([9000, 1000], [9, 1]) == 1.0  # matches an uneven split as configured


def test_sequential_srm_bayes_factor_by_the_beta_function():
    # Two arms at 50/50 with a Dirichlet(50, 50) prior: BF = B(50 + x1, 50 + x2) / B(50, 50) / 0.5^(x1 + x2).
    x1, x2 = 520, 430
    log_bf = special.betaln(50 + x1, 50 + x2) - special.betaln(50, 50) - (x1 + x2) * math.log(0.5)
    assert sq.srm_sequential_pvalue([x1, x2], [1, 1]) == pytest.approx(math.exp(-log_bf), rel=1e-9)


def test_sequential_srm_edge_cases():
    assert sq.srm_sequential_pvalue([0, 0], [1, 1]) is None
    assert sq.srm_sequential_pvalue([10], [1]) is None
    assert sq.srm_sequential_pvalue([10, 3], [1, 0]) == 0.0


@pytest.mark.parametrize("p_values", [[0.01, 0.04, 0.03, 0.2], [0.5], [0.001, 0.001, 0.9], [0.04, 0.03, 0.02, 0.01]])
def test_bh_matches_scipy(p_values):
    # scipy's false_discovery_control (method "bh") is statsmodels' multipletests fdr_bh; statsmodels is not installed.
    assert st.bh_adjust(p_values) == pytest.approx(list(stats.false_discovery_control(p_values)), abs=1e-12)


def test_bh_by_hand_and_undefined_counts_as_one():
    # sorted 0.01, 0.03, 0.04 of m = 4: 4 * 0.01 / 1 = 0.04, min(4 * 0.03 / 2, 4 * 0.04 / 3) = 0.0533.
    assert st.bh_adjust([0.01, None, 0.03, 0.04]) == pytest.approx([0.04, None, 0.16 / 3, 0.16 / 3])
    assert st.bh_adjust([]) == []


def _three_arm_aggregates() -> dict:
    results = {"A": (1000, 100), "B": (1000, 128), "C": (1000, 126)}
    return {"results": {name: {"n": n, "successes": x, "rating": {"n": n, "sum": 4.0 * n, "sum_sq": 17.0 * n}}
                        for name, (n, x) in results.items()},
            "metrics": {}}


def test_analysis_adds_sequential_figures_and_keeps_the_fixed_horizon_ones():
    stats = analyze(aa_experiment(3), _three_arm_aggregates())
    conversion = stats["comparisons"][0]["metrics"]["conversion"]
    assert {"p_value", "p_value_adjusted", "absolute_lift_ci"} <= conversion.keys()
    expected_p, expected_cs = sq.sequential_test(0.028, sq.proportion_variance(128, 1000, 100, 1000), 2000, 0.05)
    assert conversion["sequential_p_value"] == pytest.approx(expected_p)
    assert conversion["confidence_sequence"] == pytest.approx(list(expected_cs))
    assert conversion["sequential_p_value"] > conversion["p_value"]
    rating = stats["comparisons"][0]["metrics"]["rating"]
    low, high = rating["confidence_sequence"]
    assert rating["sequential_p_value"] == 1.0 and low < 0 < high
    latency = stats["comparisons"][0]["metrics"]["latency"]  # no data: undefined, like the fixed-horizon test
    assert latency["sequential_p_value"] is None and latency["confidence_sequence"] is None
    srm = stats["health"]["srm"]
    assert srm["sequential_p_value"] == 1.0 and srm["sequential_flagged"] is False and "p_value" in srm


def test_multiple_testing_option_chooses_the_adjustment():
    holm = analyze(aa_experiment(3), _three_arm_aggregates())
    bh = analyze({**aa_experiment(3), "multiple_testing": "bh"}, _three_arm_aggregates())
    raw = [c["metrics"]["conversion"]["p_value"] for c in holm["comparisons"]]
    assert [c["metrics"]["conversion"]["p_value_adjusted"] for c in holm["comparisons"]] == st.holm_adjust(raw)
    assert [c["metrics"]["conversion"]["p_value_adjusted"] for c in bh["comparisons"]] == st.bh_adjust(raw)
    assert st.bh_adjust(raw) != st.holm_adjust(raw)


def test_spec_accepts_holm_or_bh_only():
    base = {"name": "x", "variants": [{"name": "A", "model": "m"}, {"name": "B", "model": "m"}]}
    assert ExperimentSpec.model_validate(base).multiple_testing == "holm"
    assert ExperimentSpec.model_validate({**base, "multiple_testing": "bh"}).multiple_testing == "bh"
    with pytest.raises(ValidationError):
        ExperimentSpec.model_validate({**base, "multiple_testing": "bonferroni"})
