"""Expected loss (risk) of shipping an arm: how much of the metric is given up, on average, if it is the worse one.

Chance to win says how likely an arm is better, not by how much it could be worse; the expected loss
E[max(other - chosen, 0)] weighs each way of being wrong by its size (Stucchio 2015; Evan Miller's closed forms).
The posteriors are those `statistics.chance_to_beat_*` use, so the two figures always agree on a comparison.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ab_testing import statistics as st


@dataclass(frozen=True)
class ExpectedLoss:
    """Expected loss of choosing the treatment, and of choosing the control, in the metric's own units."""

    treatment: float
    control: float


def expected_positive_part(mu: float, sigma: float) -> float:
    """E[max(X, 0)] for X ~ N(mu, sigma^2): sigma * phi(mu / sigma) + mu * Phi(mu / sigma)."""
    z = mu / sigma
    return float(sigma * st.stats.norm.pdf(z) + mu * st.stats.norm.cdf(z))


def expected_loss_normal(diff: float, se: float | None) -> ExpectedLoss | None:
    """Risk of each choice when the true difference (treatment - control) is N(diff, se^2), flat prior."""
    if se is None or se == 0:
        return None
    return ExpectedLoss(treatment=expected_positive_part(-diff, se), control=expected_positive_part(diff, se))


def expected_loss_beta(x_t: int, n_t: int, x_c: int, n_c: int) -> ExpectedLoss | None:
    """Risk of each choice for conversion rates under independent Beta(1 + x, 1 + n - x) posteriors.

    Exact: E[max(p_c - p_t, 0)] = E[p_c] P(q_c > p_t) - E[p_t] P(p_c > q_t), where q ~ Beta(a + 1, b) is the
    size-biased posterior, i.e. one more success in one more trial; each probability is chance_to_beat_beta.
    Past the exact sum's limit the Beta posteriors are replaced by their (then excellent) normal approximation.
    """
    if n_t <= 0 or n_c <= 0:
        return None
    if max(x_t, x_c) + 2 > st.EXACT_BETA_LIMIT:
        return _expected_loss_beta_normal(x_t, n_t, x_c, n_c)
    return ExpectedLoss(treatment=_beta_loss(x_t, n_t, x_c, n_c), control=_beta_loss(x_c, n_c, x_t, n_t))


def _beta_loss(x_chosen: int, n_chosen: int, x_other: int, n_other: int) -> float:
    """E[max(p_other - p_chosen, 0)] by the closed form above; clipped at 0 against float dust."""
    mean_other, mean_chosen = (x_other + 1) / (n_other + 2), (x_chosen + 1) / (n_chosen + 2)
    above = st.chance_to_beat_beta(x_other + 1, n_other + 1, x_chosen, n_chosen)
    below = st.chance_to_beat_beta(x_other, n_other, x_chosen + 1, n_chosen + 1)
    assert above is not None and below is not None
    return max(0.0, mean_other * above - mean_chosen * below)


def _expected_loss_beta_normal(x_t: int, n_t: int, x_c: int, n_c: int) -> ExpectedLoss | None:
    def moments(x: int, n: int) -> tuple[float, float]:
        a, b = x + 1, n - x + 1
        return a / (a + b), a * b / ((a + b) ** 2 * (a + b + 1))

    (mean_t, var_t), (mean_c, var_c) = moments(x_t, n_t), moments(x_c, n_c)
    return expected_loss_normal(mean_t - mean_c, math.sqrt(var_t + var_c))
