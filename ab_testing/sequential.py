"""Anytime-valid statistics: results that stay valid however often an experiment is looked at.

A fixed-horizon test read at every look and stopped at the first p < alpha has a false-positive rate far
above alpha (benchmarks/bench_sequential). The mixture SPRT (Robbins 1970; Johari, Pekelis & Walsh, "Always
valid inference", Operations Research 2022) bounds that rate by alpha under continuous monitoring:

- difference in means or proportions (normal approximation): the estimate d with variance
  V = var_t / n_t + var_c / n_c, mixed over effects theta ~ N(0, tau2), gives the likelihood ratio
  Lambda = sqrt(V / (V + tau2)) * exp(tau2 d^2 / (2 V (V + tau2))), the always-valid p-value min(1, 1 / Lambda)
  and the confidence sequence d +- sqrt(V (V + tau2) / tau2 * (log((V + tau2) / V) - 2 log alpha));
- sample ratio: a Dirichlet-multinomial Bayes factor against the configured weights (Lindon & Malek,
  "Anytime-valid inference for multinomial count data", NeurIPS 2022), always-valid p = min(1, 1 / BF).

The always-valid p-value is the running minimum over looks (`running_minimum`); the API sees one look at a time, so
what it reports is the current look's value, which the running minimum can only lower.

tau2 (`mixing_variance`) is GrowthBook's choice, from the normal-mixture boundary of Howard et al. (2021): the
confidence sequence is tightest at a planned total sample size n_star, tau2 = rho^2 * sigma^2 with
rho^2 = (-2 log alpha + log(1 - 2 log alpha)) / n_star and sigma^2 = V * n the per-user variance of the estimate.

The open-ended test is conservative over any finite run (about 2% false positives for 100 looks at alpha 5%,
benchmarks/bench_sequential). An experiment that declares its planned sample size gets the truncated mSPRT
(`horizon`): the same statistic with a threshold calibrated to spend all of alpha by then.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from ab_testing.horizon import horizon_log_threshold, horizon_pvalue
from ab_testing.statistics import Interval, special

# The total sample size at which the confidence sequence is tightest: GrowthBook's default of 5,000 users. Over
# 10,000 users read every 100, n_star from 1,000 to 10,000 gave A/A rates of 1.5-2.5% (never near alpha: the
# guarantee also pays for looks between and after these) and power within 1 point of the best, 5,000 among it
# (benchmarks/bench_sequential).
PLANNED_SAMPLE_SIZE = 5_000
# Dirichlet prior concentration for the sequential SRM test: prior counts of 100 * expected share.
SRM_PRIOR_CONCENTRATION = 100.0


def mixing_variance(variance: float, n: int, alpha: float, planned_n: int = PLANNED_SAMPLE_SIZE) -> float:
    """tau2 making the confidence sequence tightest at `planned_n` users (GrowthBook; Howard et al. 2021).

    `variance` is V of the estimate at `n` users, so V * n is the per-user variance sigma^2.
    """
    log_alpha = -2 * math.log(alpha)
    rho2 = (log_alpha + math.log(1 + log_alpha)) / planned_n
    return rho2 * variance * n


def log_likelihood_ratio(diff: float, variance: float, tau2: float) -> float:
    """log Lambda of the normal-mixture SPRT of H0: effect = 0 (Johari, Pekelis & Walsh 2022)."""
    total = variance + tau2
    return 0.5 * math.log(variance / total) + tau2 * diff * diff / (2 * variance * total)


def always_valid_pvalue(diff: float, variance: float, tau2: float) -> float:
    """min(1, 1 / Lambda) at this look; the always-valid p-value is its running minimum over looks."""
    return min(1.0, math.exp(-log_likelihood_ratio(diff, variance, tau2)))


def confidence_sequence(diff: float, variance: float, tau2: float, alpha: float,
                        log_threshold: float | None = None) -> Interval:
    """The 1 - alpha confidence sequence: covers the true effect at every look at once, with probability 1 - alpha.

    It is the set of effects whose Lambda stays below the rejection level: 1 / alpha open-ended, or
    exp(`log_threshold`) for a test calibrated to a planned sample size (`horizon`).
    """
    log_level = -math.log(alpha) if log_threshold is None else log_threshold
    half = math.sqrt(variance * (variance + tau2) / tau2 * (math.log((variance + tau2) / variance) + 2 * log_level))
    return (diff - half, diff + half)


def running_minimum(p_values: Iterable[float]) -> list[float]:
    """The always-valid p-values of a history of looks: each look's value, never above an earlier look's."""
    result: list[float] = []
    for p in p_values:
        result.append(min(p, result[-1]) if result else p)
    return result


def sequential_test(diff: float, variance: float | None, n: int, alpha: float,
                    planned_n: int = PLANNED_SAMPLE_SIZE, *,
                    horizon: int | None = None) -> tuple[float | None, Interval | None]:
    """Always-valid p-value and confidence sequence of a difference d with variance V after `n` users in all.

    With a `horizon` (the planned sample size) and n within it, the mixture is tuned to the horizon and calibrated
    to it (`horizon` module): valid for any looks up to the horizon, and spending the whole alpha by then. Without
    one, or past it, the open-ended mSPRT. None where V is undefined or zero (no data, no variation), as the
    fixed-horizon tests do.
    """
    if variance is None or variance <= 0 or n <= 0:
        return None, None
    if horizon is not None and n <= horizon:
        tau2 = mixing_variance(variance, n, alpha, horizon)
        log_lr = log_likelihood_ratio(diff, variance, tau2)
        return (horizon_pvalue(log_lr, alpha),
                confidence_sequence(diff, variance, tau2, alpha, horizon_log_threshold(alpha)))
    tau2 = mixing_variance(variance, n, alpha, planned_n)
    return always_valid_pvalue(diff, variance, tau2), confidence_sequence(diff, variance, tau2, alpha)


def proportion_variance(x_t: int, n_t: int, x_c: int, n_c: int) -> float | None:
    """Unpooled variance of p_t - p_c, V = p_t(1 - p_t) / n_t + p_c(1 - p_c) / n_c."""
    if n_t <= 0 or n_c <= 0:
        return None
    p_t, p_c = x_t / n_t, x_c / n_c
    return p_t * (1 - p_t) / n_t + p_c * (1 - p_c) / n_c


def srm_sequential_pvalue(counts: Sequence[int], weights: Sequence[float],
                          concentration: float = SRM_PRIOR_CONCENTRATION) -> float | None:
    """Always-valid SRM p-value, min(1, 1 / BF), of observed arm sizes against the configured weights.

    BF = [B(a + x) / B(a)] / prod(p0_i^x_i) with a Dirichlet(a = concentration * p0) prior on the arm shares and B
    the multivariate Beta function (Lindon & Malek 2022). Like the chi-square check it is None when undefined, and
    0 when traffic reached an arm configured to get none.
    """
    pairs = [(c, w) for c, w in zip(counts, weights, strict=True) if w > 0 or c > 0]
    total_weight = sum(w for _, w in pairs)
    if len(pairs) < 2 or sum(c for c, _ in pairs) == 0 or total_weight <= 0:
        return None
    if any(w <= 0 for _, w in pairs):
        return 0.0
    shares = [w / total_weight for _, w in pairs]
    prior = [concentration * p for p in shares]
    log_bf = (_log_multivariate_beta([a + c for a, (c, _) in zip(prior, pairs, strict=True)])
              - _log_multivariate_beta(prior)
              - sum(c * math.log(p) for (c, _), p in zip(pairs, shares, strict=True)))
    return math.exp(-log_bf) if log_bf > 0 else 1.0


def _log_multivariate_beta(a: Sequence[float]) -> float:
    return float(sum(special.gammaln(x) for x in a) - special.gammaln(sum(a)))
