"""Experiment statistics as pure functions of counts and sums (see the methods note): no storage, no state.

Every function returns None where a quantity is undefined (no data, zero variance), never NaN, so the
results serialize to JSON as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import import_module
from typing import Any


class _LazyModule:
    """Imported on first use: scipy and numpy take ~1.5 s, paid by the first analysis instead of every start-up."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        return getattr(import_module(self._name), attr)


np = _LazyModule("numpy")
special = _LazyModule("scipy.special")
stats = _LazyModule("scipy.stats")

Interval = tuple[float, float]

# Above this many successes the exact Beta sum is replaced by its (then excellent) normal approximation.
EXACT_BETA_LIMIT = 200_000


@dataclass(frozen=True)
class Lift:
    """A treatment-minus-control difference with its CI, and the same as a relative lift."""

    absolute: float
    absolute_ci: Interval | None
    relative: float | None
    relative_ci: Interval | None


@dataclass(frozen=True)
class TestResult:
    """A two-sided test: statistic, p-value, and the standard error of the difference."""

    statistic: float | None
    p_value: float | None
    se: float | None
    df: float | None = None


@lru_cache(maxsize=64)
def z_quantile(q: float) -> float:
    """Standard normal quantile, cached: the same few levels are asked for on every analysis."""
    return float(stats.norm.ppf(q))


def z_critical(confidence: float) -> float:
    """Two-sided normal critical value, e.g. 1.96 for 0.95."""
    return z_quantile(1 - (1 - confidence) / 2)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> Interval | None:
    """Wilson score interval for a proportion: sensible near 0 and 1, where the Wald interval is not."""
    if n <= 0:
        return None
    z = z_critical(confidence)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def moments(n: int, total: float, total_sq: float) -> tuple[float | None, float | None]:
    """Sample mean and variance (n - 1) from a count, a sum and a sum of squares."""
    if n <= 0:
        return None, None
    mean = total / n
    if n < 2:
        return mean, None
    return mean, max(0.0, (total_sq - total * total / n) / (n - 1))


def mean_interval(n: int, mean: float | None, variance: float | None, confidence: float = 0.95) -> Interval | None:
    """Student-t interval for a mean."""
    if mean is None or variance is None or n < 2:
        return None
    half = float(stats.t.ppf(1 - (1 - confidence) / 2, n - 1)) * math.sqrt(variance / n)
    return (mean - half, mean + half)


def two_proportion_ztest(x_t: int, n_t: int, x_c: int, n_c: int) -> TestResult:
    """Pooled two-proportion z-test, two-sided; matches statsmodels' `proportions_ztest`."""
    if n_t <= 0 or n_c <= 0:
        return TestResult(None, None, None)
    pooled = (x_t + x_c) / (n_t + n_c)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    if se == 0:
        return TestResult(None, None, None)
    z = (x_t / n_t - x_c / n_c) / se
    return TestResult(z, float(2 * stats.norm.sf(abs(z))), se)


def welch_ttest(mean_t: float, var_t: float, n_t: int, mean_c: float, var_c: float, n_c: int) -> TestResult:
    """Welch's unequal-variance t-test with Welch-Satterthwaite degrees of freedom."""
    if n_t < 2 or n_c < 2:
        return TestResult(None, None, None)
    a, b = var_t / n_t, var_c / n_c
    se = math.sqrt(a + b)
    if se == 0:
        return TestResult(None, None, None)
    df = (a + b) ** 2 / (a * a / (n_t - 1) + b * b / (n_c - 1))
    result = stats.ttest_ind_from_stats(
        mean_t, math.sqrt(var_t), n_t, mean_c, math.sqrt(var_c), n_c, equal_var=False
    )
    return TestResult(float(result.statistic), float(result.pvalue), se, df)


def relative_lift(est_t: float, se_t: float, est_c: float, se_c: float, confidence: float = 0.95) -> tuple[
    float | None, Interval | None
]:
    """Relative lift t/c - 1 with a delta-method CI; undefined when the control estimate is 0."""
    if est_c == 0:
        return None, None
    ratio = est_t / est_c
    se = math.sqrt(se_t**2 / est_c**2 + est_t**2 * se_c**2 / est_c**4)
    half = z_critical(confidence) * se
    return ratio - 1, (ratio - 1 - half, ratio - 1 + half)


def proportion_lift(x_t: int, n_t: int, x_c: int, n_c: int, confidence: float = 0.95) -> Lift | None:
    """Difference of proportions with an unpooled Wald CI, and the relative lift with a delta-method CI."""
    if n_t <= 0 or n_c <= 0:
        return None
    p_t, p_c = x_t / n_t, x_c / n_c
    se_t, se_c = math.sqrt(p_t * (1 - p_t) / n_t), math.sqrt(p_c * (1 - p_c) / n_c)
    half = z_critical(confidence) * math.sqrt(se_t**2 + se_c**2)
    relative, relative_ci = relative_lift(p_t, se_t, p_c, se_c, confidence)
    return Lift(p_t - p_c, (p_t - p_c - half, p_t - p_c + half), relative, relative_ci)


def mean_lift(
    mean_t: float, var_t: float, n_t: int, mean_c: float, var_c: float, n_c: int, df: float | None,
    confidence: float = 0.95,
) -> Lift:
    """Difference of means with a Welch t CI, and the relative lift with a delta-method CI."""
    se_t, se_c = math.sqrt(var_t / n_t), math.sqrt(var_c / n_c)
    diff = mean_t - mean_c
    interval = None
    if df is not None:
        half = float(stats.t.ppf(1 - (1 - confidence) / 2, df)) * math.sqrt(se_t**2 + se_c**2)
        interval = (diff - half, diff + half)
    relative, relative_ci = relative_lift(mean_t, se_t, mean_c, se_c, confidence)
    return Lift(diff, interval, relative, relative_ci)


def holm_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni step-down adjustment; an undefined p-value counts in the family as 1."""
    m = len(p_values)
    filled = [1.0 if p is None else p for p in p_values]
    order = sorted(range(m), key=lambda i: filled[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * filled[index]))
        adjusted[index] = running
    return [None if p is None else adjusted[i] for i, p in enumerate(p_values)]


def bh_adjust(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg step-up adjustment (controls the false discovery rate, not the family-wise error rate, so
    it is less strict than Holm with many arms); an undefined p-value counts in the family as 1."""
    m = len(p_values)
    filled = [1.0 if p is None else p for p in p_values]
    order = sorted(range(m), key=lambda i: filled[i], reverse=True)
    adjusted = [1.0] * m
    running = 1.0
    for rank, index in enumerate(order):
        running = min(running, m * filled[index] / (m - rank))
        adjusted[index] = running
    return [None if p is None else adjusted[i] for i, p in enumerate(p_values)]


def srm_pvalue(counts: Sequence[int], weights: Sequence[float]) -> float | None:
    """Pearson chi-square goodness of fit of observed arm sizes against the configured weights."""
    pairs = [(c, w) for c, w in zip(counts, weights, strict=True) if w > 0 or c > 0]
    total_weight = sum(w for _, w in pairs)
    total = sum(c for c, _ in pairs)
    if len(pairs) < 2 or total == 0 or total_weight <= 0:
        return None
    if any(w <= 0 for _, w in pairs):
        return 0.0  # traffic reached an arm that was configured to get none
    # Pearson's statistic as scipy.stats.chisquare computes it, without its per-call array machinery.
    statistic = sum((c - total * w / total_weight) ** 2 / (total * w / total_weight) for c, w in pairs)
    return float(stats.chi2.sf(statistic, len(pairs) - 1))


def sample_size_proportion(baseline: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Per-arm n to detect an absolute change `delta` from `baseline` (Evan Miller's formula)."""
    target = baseline + delta
    if delta == 0 or not 0 <= baseline <= 1 or not 0 <= target <= 1:
        return None
    z_alpha, z_power = z_critical(1 - alpha), z_quantile(power)
    root = z_alpha * math.sqrt(2 * baseline * (1 - baseline)) + z_power * math.sqrt(
        baseline * (1 - baseline) + target * (1 - target)
    )
    return math.ceil(root**2 / delta**2)


def sample_size_mean(sigma: float, delta: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Per-arm n to detect a change `delta` in a mean with standard deviation `sigma`."""
    if delta == 0 or sigma <= 0:
        return None
    z_alpha, z_power = z_critical(1 - alpha), z_quantile(power)
    return math.ceil(2 * (z_alpha + z_power) ** 2 * sigma**2 / delta**2)


def chance_to_beat_beta(x_t: int, n_t: int, x_c: int, n_c: int) -> float | None:
    """P(p_t > p_c) under independent Beta(1, 1) priors, by the exact finite sum."""
    if n_t <= 0 or n_c <= 0:
        return None
    a_t, b_t, a_c, b_c = x_t + 1, n_t - x_t + 1, x_c + 1, n_c - x_c + 1
    if a_t > EXACT_BETA_LIMIT:
        return _chance_normal_beta(a_t, b_t, a_c, b_c)
    i = np.arange(a_t, dtype=float)
    terms = (special.betaln(a_c + i, b_c + b_t) - np.log(b_t + i) - special.betaln(1 + i, b_t)
             - special.betaln(a_c, b_c))
    return float(min(1.0, max(0.0, np.exp(terms).sum())))  # Evan Miller's closed form; clip float dust


def _chance_normal_beta(a_t: float, b_t: float, a_c: float, b_c: float) -> float:
    mean_t, mean_c = a_t / (a_t + b_t), a_c / (a_c + b_c)
    var_t = a_t * b_t / ((a_t + b_t) ** 2 * (a_t + b_t + 1))
    var_c = a_c * b_c / ((a_c + b_c) ** 2 * (a_c + b_c + 1))
    return float(stats.norm.cdf((mean_t - mean_c) / math.sqrt(var_t + var_c)))


def chance_to_beat_normal(diff: float, se: float | None) -> float | None:
    """P(true difference > 0) from the normal approximation on the lift (flat prior)."""
    if se is None or se == 0:
        return None
    return float(stats.norm.cdf(diff / se))
