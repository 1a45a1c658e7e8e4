"""A rollout's guardrails: is the candidate worse than the control beyond a threshold? Pure functions, no state.

The rule, per guardrail (error rate, latency, cost per call), at every look:
- breach (roll back now): the always-valid p-value (mSPRT, `ab_testing.sequential`) of "the candidate is exactly at
  the threshold" is below alpha and the estimate lies beyond it, i.e. the data prove the candidate worse than the
  threshold allows. Being always valid, it may be read after every call without inflating false rollbacks.
- hold: the observed figure is beyond the threshold, or an arm has no calls yet, but nothing is proven: the step
  does not pass and keeps collecting calls.
- pass: the observed figure is within the threshold.

Error rate: d = p_t - p_c - points / 100 over all calls. Latency and cost compare means of successful calls against
the ratio r: d = mean_t - r * mean_c with V = var_t / n_t + r^2 var_c / n_c. The latency guardrail is stated on
p95, which has no simple variance, so the sequential test is on mean latency while the observed check is on the
p95 ratio itself: a slower candidate is proven slower on the mean, and a step passes only with p95 within bounds.
The mixture is tuned (`planned_n`) to the calls a step's decision is made at, where an early rollback matters most.

Non-inferiority of the primary metric (`non_inferiority`), which gates the last step with a control arm and the
promotion: the upper end of the confidence sequence of d - margin (error rate, in points) or of
mean_t - (1 + margin) * mean_c (latency, cost) is at most 0, i.e. the candidate is proven not worse by more than the
margin; a candidate proven better passes too (the margin-0 case). It never rolls back; it passes or holds. The
error rate's variance is Agresti-Caffo's (one error and one success added to each arm), so two arms without errors
still have one and can be proven alike.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from ab_testing.rollout_spec import Guardrails, PrimaryMetric
from ab_testing.sequential import proportion_variance, sequential_test

Verdict = Literal["breach", "hold", "pass"]


@dataclass(frozen=True)
class ArmCalls:
    """One arm's calls since the rollout started: how many failed, the latency and cost of the successful ones."""

    calls: int
    errors: int
    latencies: Sequence[float]
    costs: Sequence[float]


@dataclass(frozen=True)
class Check:
    """One guardrail's look: the observed figure against its limit, the always-valid p-value, the verdict."""

    guardrail: str
    observed: float | None
    limit: float
    p_value: float | None
    verdict: Verdict

    def to_dict(self) -> dict[str, object]:
        finite = self.observed is not None and math.isfinite(self.observed)  # JSON has no infinity
        return {"guardrail": self.guardrail, "observed": self.observed if finite else None, "limit": self.limit,
                "p_value": self.p_value, "verdict": self.verdict}


def evaluate(candidate: ArmCalls, control: ArmCalls, guardrails: Guardrails, planned_n: int) -> list[Check]:
    """Every guardrail's check of the candidate against the control."""
    return [
        _error_rate(candidate, control, guardrails, planned_n),
        _ratio("p95_latency_ratio", candidate.latencies, control.latencies, guardrails.p95_latency_ratio,
               guardrails.alpha, planned_n, observed=_p95),
        _ratio("cost_per_call_ratio", candidate.costs, control.costs, guardrails.cost_per_call_ratio,
               guardrails.alpha, planned_n, observed=statistics.fmean),
    ]


def default_margin(metric: PrimaryMetric, guardrails: Guardrails) -> float:
    """The guardrail's own limit, as a non-inferiority margin in the metric's unit."""
    if metric == "error_rate":
        return guardrails.error_rate_points
    return (guardrails.p95_latency_ratio if metric == "latency" else guardrails.cost_per_call_ratio) - 1


def non_inferiority(candidate: ArmCalls, control: ArmCalls, metric: PrimaryMetric, margin: float, alpha: float,
                    planned_n: int) -> Check:
    """Whether the candidate is proven not worse than the control on `metric` by more than `margin`."""
    name = f"primary_{metric}"
    if metric == "error_rate":
        limit = margin
        if not candidate.calls or not control.calls:
            return Check(name, None, limit, None, "hold")
        rise = candidate.errors / candidate.calls - control.errors / control.calls
        excess, observed, n = rise - margin / 100, rise * 100, candidate.calls + control.calls
        variance = proportion_variance(candidate.errors + 1, candidate.calls + 2, control.errors + 1,
                                       control.calls + 2)
    else:
        limit = 1 + margin
        values = (candidate.latencies, control.latencies) if metric == "latency" else (candidate.costs, control.costs)
        if len(values[0]) < 2 or len(values[1]) < 2:
            return Check(name, None, limit, None, "hold")
        excess, variance = _mean_excess(values[0], values[1], limit)
        observed, n = _safe_ratio(statistics.fmean(values[0]), statistics.fmean(values[1])), sum(map(len, values))
    p_value, interval = sequential_test(excess, variance, n, alpha, planned_n)
    upper = interval[1] if interval is not None else (excess if variance == 0 else None)  # no variation: exact
    return Check(name, observed, limit, p_value, "pass" if upper is not None and upper <= 0 else "hold")


def _error_rate(candidate: ArmCalls, control: ArmCalls, guardrails: Guardrails, planned_n: int) -> Check:
    limit = guardrails.error_rate_points
    if not candidate.calls or not control.calls:
        return Check("error_rate_points", None, limit, None, "hold")
    rise = candidate.errors / candidate.calls - control.errors / control.calls
    variance = proportion_variance(candidate.errors, candidate.calls, control.errors, control.calls)
    excess = rise - limit / 100
    p_value, _ = sequential_test(excess, variance, candidate.calls + control.calls, guardrails.alpha, planned_n)
    return Check("error_rate_points", rise * 100, limit, p_value, _verdict(excess, p_value, guardrails.alpha))


def _ratio(name: str, candidate: Sequence[float], control: Sequence[float], limit: float, alpha: float,
           planned_n: int, *, observed: Callable[[Sequence[float]], float]) -> Check:
    if not candidate or not control:
        return Check(name, None, limit, None, "hold")
    excess, variance = _mean_excess(candidate, control, limit)
    p_value, _ = sequential_test(excess, variance, len(candidate) + len(control), alpha, planned_n)
    ratio = _safe_ratio(observed(candidate), observed(control))
    verdict = _verdict(excess, p_value, alpha)
    if verdict == "pass" and ratio > limit:
        verdict = "hold"
    return Check(name, ratio, limit, p_value, verdict)


def _mean_excess(candidate: Sequence[float], control: Sequence[float], limit: float) -> tuple[float, float | None]:
    """d = mean_t - limit * mean_c and its variance (None with fewer than two values in an arm)."""
    excess = statistics.fmean(candidate) - limit * statistics.fmean(control)
    if len(candidate) < 2 or len(control) < 2:
        return excess, None
    return excess, statistics.variance(candidate) / len(candidate) + limit ** 2 * statistics.variance(control) / len(
        control)


def _verdict(excess: float, p_value: float | None, alpha: float) -> Verdict:
    if excess > 0 and p_value is not None and p_value < alpha:
        return "breach"
    return "hold" if excess > 0 else "pass"


def _p95(values: Sequence[float]) -> float:
    """Nearest-rank 95th percentile."""
    ordered = sorted(values)
    return ordered[max(math.ceil(0.95 * len(ordered)) - 1, 0)]


def _safe_ratio(candidate: float, control: float) -> float:
    """candidate / control; equal zeros are a ratio of 1 (free and free), a cost over zero is infinite."""
    if control > 0:
        return candidate / control
    return 1.0 if candidate <= 0 else math.inf
