"""Expected loss against independent numerical integration, and CUPED against per-unit arithmetic and 1 - rho^2."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from ab_testing import cuped
from ab_testing.analysis import analyze
from ab_testing.bayesian import expected_loss_beta, expected_loss_normal, expected_positive_part
from benchmarks.bench_cuped import RHOS, simulate

TOL = 1e-4
BETA_CASES = [(3, 10, 5, 12), (40, 100, 30, 100), (120, 1000, 100, 1000), (1000, 10000, 1040, 10000),
              (0, 50, 1, 50), (500, 600, 480, 600)]


def _beta_loss_by_quadrature(x_chosen: int, n_chosen: int, x_other: int, n_other: int) -> float:
    """E[max(O - C, 0)] = integral of P(C < t) P(O > t) dt, since (O - C)^+ = integral of 1{C < t < O} dt."""
    chosen, other = stats.beta(x_chosen + 1, n_chosen - x_chosen + 1), stats.beta(x_other + 1, n_other - x_other + 1)
    value, _ = integrate.quad(lambda t: chosen.cdf(t) * other.sf(t), 0, 1, points=[chosen.mean(), other.mean()],
                              epsabs=1e-13, limit=500)
    return value


@pytest.mark.parametrize(("mu", "sigma"), [(0.0, 1.0), (0.3, 0.2), (-0.5, 0.1), (2.0, 3.0), (-1e-3, 4e-4)])
def test_normal_positive_part_matches_quadrature(mu, sigma):
    lo, hi = max(0.0, mu - 40 * sigma), max(0.0, mu) + 40 * sigma  # all the mass above 0, for quad to see
    reference, _ = integrate.quad(lambda x: x * stats.norm.pdf(x, mu, sigma), lo, hi, epsabs=1e-15, limit=200)
    assert expected_positive_part(mu, sigma) == pytest.approx(reference, rel=1e-6, abs=TOL * sigma)
    assert expected_positive_part(0.0, 1.0) == pytest.approx(1 / math.sqrt(2 * math.pi), abs=1e-12)


def test_normal_loss_treatment_minus_control_is_the_mean_difference():
    loss = expected_loss_normal(0.02, 0.015)
    assert loss is not None
    assert loss.control - loss.treatment == pytest.approx(0.02, abs=1e-12)  # E[D+] - E[(-D)+] = E[D]
    assert loss.treatment < loss.control
    assert expected_loss_normal(0.02, 0.0) is None and expected_loss_normal(0.02, None) is None


@pytest.mark.parametrize("case", BETA_CASES, ids=[str(c) for c in BETA_CASES])
def test_beta_loss_matches_quadrature(case):
    x_t, n_t, x_c, n_c = case
    loss = expected_loss_beta(x_t, n_t, x_c, n_c)
    assert loss is not None
    assert loss.treatment == pytest.approx(_beta_loss_by_quadrature(x_t, n_t, x_c, n_c), abs=TOL)
    assert loss.control == pytest.approx(_beta_loss_by_quadrature(x_c, n_c, x_t, n_t), abs=TOL)
    mean_t, mean_c = (x_t + 1) / (n_t + 2), (x_c + 1) / (n_c + 2)
    assert loss.treatment - loss.control == pytest.approx(mean_c - mean_t, abs=1e-10)


def test_beta_loss_relative_precision_on_a_small_risk():
    # A clear winner: the risk of shipping it is tiny, and must still be right to a few digits, not absorbed.
    loss = expected_loss_beta(1200, 10000, 1000, 10000)
    assert loss is not None
    assert loss.treatment == pytest.approx(_beta_loss_by_quadrature(1200, 10000, 1000, 10000), rel=1e-4)


def test_beta_loss_monte_carlo_sanity():
    rng = np.random.default_rng(5)
    p_t, p_c = rng.beta(41, 61, 2_000_000), rng.beta(31, 71, 2_000_000)
    samples = np.maximum(p_c - p_t, 0)
    loss = expected_loss_beta(40, 100, 30, 100)
    assert loss is not None
    assert abs(loss.treatment - samples.mean()) < 5 * samples.std() / math.sqrt(samples.size)


def test_beta_loss_beyond_the_exact_limit_uses_the_normal_approximation():
    x_t, n_t, x_c, n_c = 250_500, 1_000_000, 249_000, 1_000_000
    loss = expected_loss_beta(x_t, n_t, x_c, n_c)
    assert loss is not None
    assert loss.treatment == pytest.approx(_beta_loss_by_quadrature(x_t, n_t, x_c, n_c), abs=1e-6)
    assert loss.control == pytest.approx(_beta_loss_by_quadrature(x_c, n_c, x_t, n_t), abs=1e-6)
    assert expected_loss_beta(0, 0, 1, 2) is None


def _experiment() -> dict:
    return {"id": 1, "name": "e", "status": "running", "control": "A", "primary_metric": "conversion", "alpha": 0.05,
            "power": 0.8, "min_sample_size": 100, "min_conversions": 25, "mde": 0.02,
            "variants": [{"name": n, "model": "m", "weight": 1.0, "params": {}} for n in ("A", "B")]}


def _sums(values: np.ndarray) -> dict[str, float]:
    return {"n": len(values), "sum": float(values.sum()), "sum_sq": float(values @ values)}


def test_analysis_reports_expected_loss_beside_chance_to_win():
    rng = np.random.default_rng(1)
    latency_a, latency_b = rng.normal(1.0, 0.3, 400), rng.normal(0.9, 0.3, 400)
    aggregates = {"results": {"A": {"n": 400, "successes": 40, "rating": _sums(np.array([]))},
                              "B": {"n": 400, "successes": 60, "rating": _sums(np.array([]))}},
                  "metrics": {"A": {"latency": _sums(latency_a)}, "B": {"latency": _sums(latency_b)}}}
    metrics = analyze(_experiment(), aggregates)["comparisons"][0]["metrics"]
    conversion, latency = metrics["conversion"], metrics["latency"]
    assert conversion["chance_to_win"] > 0.95 and "absolute_lift" in conversion
    loss = expected_loss_beta(60, 400, 40, 400)
    assert loss is not None and conversion["expected_loss"] == {"treatment": loss.treatment, "control": loss.control}
    # Lower latency is better: shipping B risks E[max(lat_B - lat_A, 0)], the small side.
    diff, se = latency["absolute_lift"], math.sqrt(latency_b.var(ddof=1) / 400 + latency_a.var(ddof=1) / 400)
    assert latency["expected_loss"]["treatment"] == pytest.approx(expected_positive_part(diff, se), abs=1e-12)
    assert latency["expected_loss"]["treatment"] < latency["expected_loss"]["control"]
    assert metrics["rating"]["expected_loss"] is None


def test_cuped_sums_match_per_unit_arithmetic():
    rng = np.random.default_rng(2)
    x = [rng.normal(5, 2, 300), rng.normal(5, 2, 250)]
    y = [2 + 0.8 * x[0] + rng.normal(0, 1, 300), 2.3 + 0.8 * x[1] + rng.normal(0, 1, 250)]
    groups = {"t": cuped.CovariateSums.from_values(x[0], y[0]), "c": cuped.CovariateSums.from_values(x[1], y[1])}
    all_x, all_y = np.concatenate(x), np.concatenate(y)
    theta = np.cov(all_x, all_y)[0, 1] / all_x.var(ddof=1)
    adjusted_y = [yi - theta * (xi - all_x.mean()) for xi, yi in zip(x, y, strict=True)]
    result = cuped.adjust(groups)
    assert result is not None
    assert result[0] == pytest.approx(theta, rel=1e-9)
    for name, values in zip(("t", "c"), adjusted_y, strict=True):
        assert result[1][name].mean == pytest.approx(values.mean(), rel=1e-9)
        assert result[1][name].variance == pytest.approx(values.var(ddof=1), rel=1e-9)
    difference = cuped.cuped_difference(groups["t"], groups["c"])
    assert difference is not None
    assert difference.diff == pytest.approx(adjusted_y[0].mean() - adjusted_y[1].mean(), rel=1e-9)
    assert difference.variance == pytest.approx(
        adjusted_y[0].var(ddof=1) / 300 + adjusted_y[1].var(ddof=1) / 250, rel=1e-9)
    constant = cuped.CovariateSums.from_values([1.0, 1.0], [2.0, 3.0])
    assert cuped.pooled_theta([constant]) is None and cuped.cuped_difference(constant, constant) is None


@pytest.mark.parametrize("rho", RHOS)
def test_cuped_variance_reduction_matches_one_minus_rho_squared(rho):
    result = simulate(rho, replications=4000, units=200, rng=np.random.default_rng(11))
    assert result.estimated == pytest.approx(1 - rho * rho, rel=0.10)
    assert result.empirical == pytest.approx(1 - rho * rho, rel=0.10)


def test_analysis_adds_cuped_when_pre_period_sums_are_given():
    rng = np.random.default_rng(3)
    x = {name: rng.normal(10, 3, 500) for name in ("A", "B")}
    y = {"A": 0.9 * x["A"] + rng.normal(0, 1, 500), "B": 0.5 + 0.9 * x["B"] + rng.normal(0, 1, 500)}
    covariates = {name: {"revenue": vars(cuped.CovariateSums.from_values(x[name], y[name]))} for name in x}
    aggregates = {"results": {name: {"n": 500, "successes": 50, "rating": _sums(np.array([]))} for name in x},
                  "metrics": {name: {"revenue": _sums(y[name])} for name in x}, "covariates": covariates}
    stats = analyze({**_experiment(), "primary_metric": "revenue"}, aggregates)
    revenue = stats["comparisons"][0]["metrics"]["revenue"]
    expected = cuped.cuped_difference(*(cuped.CovariateSums.from_mapping(covariates[n]["revenue"]) for n in "BA"))
    assert expected is not None
    assert revenue["cuped"]["absolute_lift"] == pytest.approx(expected.diff, rel=1e-12)
    assert revenue["cuped"]["variance_ratio"] == pytest.approx(expected.variance_ratio, rel=1e-12)
    assert revenue["cuped"]["variance_ratio"] < 0.2 and revenue["p_value"] is not None  # plain keys stay
    ci = revenue["cuped"]["absolute_lift_ci"]
    assert ci[1] - ci[0] < revenue["absolute_lift_ci"][1] - revenue["absolute_lift_ci"][0]
