"""Table-driven tests of the pure statistics against statsmodels/scipy reference values (tests/data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ab_testing import statistics as st

REFERENCE = json.loads((Path(__file__).parent / "data" / "ab_reference.json").read_text())
TOL = 1e-6


def cases(name: str) -> list:
    return [pytest.param(case, id=f"{name}-{i}") for i, case in enumerate(REFERENCE[name])]


@pytest.mark.parametrize("case", cases("ztest"))
def test_pooled_ztest_matches_statsmodels(case):
    result = st.two_proportion_ztest(case["x_t"], case["n_t"], case["x_c"], case["n_c"])
    assert result.p_value == pytest.approx(case["p_value"], abs=TOL)
    assert result.statistic == pytest.approx(case["z"], abs=TOL)


@pytest.mark.parametrize("case", cases("ztest"))
def test_unpooled_wald_difference_ci_matches_statsmodels(case):
    lift = st.proportion_lift(case["x_t"], case["n_t"], case["x_c"], case["n_c"])
    assert lift.absolute_ci == pytest.approx(tuple(case["diff_ci"]), abs=TOL)


@pytest.mark.parametrize("case", cases("wilson"))
def test_wilson_interval_matches_statsmodels(case):
    assert st.wilson_interval(case["successes"], case["n"]) == pytest.approx(tuple(case["ci"]), abs=TOL)


def _moments(values: list[float]) -> tuple[int, float, float]:
    n = len(values)
    mean, variance = st.moments(n, float(sum(values)), float(sum(v * v for v in values)))
    assert mean is not None and variance is not None
    return n, mean, variance


@pytest.mark.parametrize("case", cases("welch"))
def test_welch_from_sums_matches_scipy_on_raw_data(case):
    n_t, mean_t, var_t = _moments(case["treatment"])
    n_c, mean_c, var_c = _moments(case["control"])
    result = st.welch_ttest(mean_t, var_t, n_t, mean_c, var_c, n_c)
    assert result.p_value == pytest.approx(case["p_value"], abs=TOL)
    assert result.statistic == pytest.approx(case["t"], abs=TOL)
    assert result.df == pytest.approx(case["df"], abs=TOL)
    lift = st.mean_lift(mean_t, var_t, n_t, mean_c, var_c, n_c, result.df)
    assert lift.absolute_ci == pytest.approx(tuple(case["diff_ci"]), abs=TOL)


@pytest.mark.parametrize("case", cases("holm"))
def test_holm_matches_statsmodels_multipletests(case):
    assert st.holm_adjust(case["p_values"]) == pytest.approx(case["adjusted"], abs=1e-12)


@pytest.mark.parametrize("case", cases("srm"))
def test_srm_chi_square_matches_scipy(case):
    assert st.srm_pvalue(case["counts"], case["weights"]) == pytest.approx(case["p_value"], abs=1e-9)


@pytest.mark.parametrize("case", cases("chance_to_win"))
def test_beta_chance_to_win_matches_numerical_integration(case):
    value = st.chance_to_beat_beta(case["x_t"], case["n_t"], case["x_c"], case["n_c"])
    assert value == pytest.approx(case["chance_to_win"], abs=TOL)


@pytest.mark.parametrize("case", cases("sample_size_proportion"))
def test_sample_size_follows_evan_millers_formula(case):
    n = st.sample_size_proportion(case["baseline"], case["delta"], case["alpha"], case["power"])
    assert n == case["n"]


def test_relative_lift_delta_method_ci():
    # p_t = 0.15, p_c = 0.10 at n = 1000: var(r) = se_t^2/p_c^2 + p_t^2 se_c^2/p_c^4
    lift = st.proportion_lift(150, 1000, 100, 1000)
    se = ((0.15 * 0.85 / 1000) / 0.01 + 0.0225 * (0.1 * 0.9 / 1000) / 0.0001) ** 0.5
    assert lift.relative == pytest.approx(0.5)
    assert lift.relative_ci == pytest.approx((0.5 - 1.959963984540054 * se, 0.5 + 1.959963984540054 * se))


def test_undefined_quantities_are_none_not_nan():
    assert st.two_proportion_ztest(0, 10, 0, 10).p_value is None  # pooled rate 0: no variance
    assert st.welch_ttest(3.0, 0.0, 5, 3.0, 0.0, 5).p_value is None
    assert st.welch_ttest(3.0, 1.0, 1, 3.0, 1.0, 5).p_value is None
    assert st.wilson_interval(0, 0) is None
    assert st.proportion_lift(0, 10, 0, 10).relative is None  # control rate 0
    assert st.moments(1, 4.0, 16.0) == (4.0, None)
    assert st.srm_pvalue([0, 0], [1, 1]) is None


def test_holm_counts_undefined_p_values_in_the_family():
    assert st.holm_adjust([0.02, None]) == [0.04, None]


def test_srm_flags_traffic_in_an_arm_weighted_zero():
    assert st.srm_pvalue([10, 5], [1, 0]) == 0.0


def test_means_sample_size():
    # 2 (z_.975 + z_.8)^2 sigma^2 / delta^2 = 2 * 7.849 * 4 / 0.25 -> 251.2 -> 252
    assert st.sample_size_mean(2.0, 0.5) == 252
    assert st.sample_size_mean(0.0, 0.5) is None
