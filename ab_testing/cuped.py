"""CUPED variance reduction (Deng, Xu, Kohavi & Walker 2013) from per-variant sufficient statistics.

A unit's pre-period value X of the metric predicts its in-experiment value Y but cannot be moved by the treatment,
so Y_cuped = Y - theta (X - mean(X)) keeps the difference in means unbiased while its variance shrinks by the
factor 1 - rho^2 (rho = corr(X, Y)). theta = cov(X, Y) / var(X) is pooled over all variants, as in the paper.
Everything works on sums (n, sum X, sum Y, sum X^2, sum Y^2, sum XY) so a store can compute them in the database.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CovariateSums:
    """Sufficient statistics of (pre-period X, metric Y) pairs, one pair per unit."""

    n: int
    sum_x: float
    sum_y: float
    sum_xx: float
    sum_yy: float
    sum_xy: float

    @classmethod
    def from_values(cls, x: Iterable[float], y: Iterable[float]) -> CovariateSums:
        """From per-unit arrays of equal length (x[i] and y[i] belong to the same unit)."""
        pairs = [(float(a), float(b)) for a, b in zip(x, y, strict=True)]
        return cls(len(pairs), sum(a for a, _ in pairs), sum(b for _, b in pairs), sum(a * a for a, _ in pairs),
                   sum(b * b for _, b in pairs), sum(a * b for a, b in pairs))

    @classmethod
    def from_mapping(cls, sums: Mapping[str, Any]) -> CovariateSums:
        """From a dict with the field names as keys, as an aggregate query would return it."""
        return cls(int(sums["n"]), *(float(sums[key]) for key in ("sum_x", "sum_y", "sum_xx", "sum_yy", "sum_xy")))


@dataclass(frozen=True)
class AdjustedMoments:
    """Mean and sample variance (n - 1) of Y_cuped in one variant, for the usual Welch t-test, and Y's own variance."""

    n: int
    mean: float
    variance: float
    raw_variance: float


@dataclass(frozen=True)
class CupedDifference:
    """Adjusted treatment-minus-control difference, its variance, and that variance relative to the unadjusted one."""

    theta: float
    diff: float
    variance: float
    variance_ratio: float | None


def pooled_theta(groups: Iterable[CovariateSums]) -> float | None:
    """cov(X, Y) / var(X) over all units of all variants; None when X does not vary."""
    groups = list(groups)
    n = sum(g.n for g in groups)
    if n < 2:
        return None
    sum_x, sum_y = sum(g.sum_x for g in groups), sum(g.sum_y for g in groups)
    sxx = sum(g.sum_xx for g in groups) - sum_x * sum_x / n
    sxy = sum(g.sum_xy for g in groups) - sum_x * sum_y / n
    return sxy / sxx if sxx > 0 else None


def adjust(groups: Mapping[str, CovariateSums]) -> tuple[float, dict[str, AdjustedMoments]] | None:
    """theta and every variant's CUPED mean and variance; None if theta or some variant's variance is undefined."""
    theta = pooled_theta(groups.values())
    if theta is None or any(g.n < 2 for g in groups.values()):
        return None
    total_n = sum(g.n for g in groups.values())
    grand_mean_x = sum(g.sum_x for g in groups.values()) / total_n
    adjusted = {}
    for name, g in groups.items():
        mean_x, mean_y = g.sum_x / g.n, g.sum_y / g.n
        sxx = g.sum_xx - g.n * mean_x * mean_x
        syy = g.sum_yy - g.n * mean_y * mean_y
        sxy = g.sum_xy - g.n * mean_x * mean_y
        variance = max(0.0, (syy - 2 * theta * sxy + theta * theta * sxx) / (g.n - 1))
        adjusted[name] = AdjustedMoments(g.n, mean_y - theta * (mean_x - grand_mean_x), variance,
                                         max(0.0, syy / (g.n - 1)))
    return theta, adjusted


def cuped_difference(treatment: CovariateSums, control: CovariateSums) -> CupedDifference | None:
    """The two-arm CUPED estimate: diff = (Ybar_t - Ybar_c) - theta (Xbar_t - Xbar_c), var = s_t^2/n_t + s_c^2/n_c.

    theta is treated as known, which costs O(1/n) in the variance and is what the paper (and practice) does.
    """
    result = adjust({"treatment": treatment, "control": control})
    if result is None:
        return None
    theta, moments = result
    t, c = moments["treatment"], moments["control"]
    variance = t.variance / t.n + c.variance / c.n
    return CupedDifference(theta, t.mean - c.mean, variance, variance_ratio(t, c))


def variance_ratio(treatment: AdjustedMoments, control: AdjustedMoments) -> float | None:
    """Var(CUPED difference) / Var(plain difference in means); about 1 - rho^2."""
    raw = treatment.raw_variance / treatment.n + control.raw_variance / control.n
    return (treatment.variance / treatment.n + control.variance / control.n) / raw if raw > 0 else None
