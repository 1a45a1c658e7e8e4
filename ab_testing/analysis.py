"""Builds `get_experiment_stats` from an experiment and its stored aggregates, using the pure statistics.

`analyze` is itself pure (dicts in, dict out), so simulations can run the exact path the service runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ab_testing import cuped, sequential
from ab_testing import statistics as st
from ab_testing.bayesian import ExpectedLoss, expected_loss_beta, expected_loss_normal
from ab_testing.decision import decide, enough_data

CORE_METRICS = ("conversion", "rating", "latency", "cost")
LOWER_IS_BETTER = frozenset({"latency", "cost", "tokens"})
CONFIDENCE = 0.95
EMPTY_SUMS = {"n": 0, "sum": 0.0, "sum_sq": 0.0}


def analyze(experiment: Mapping[str, Any], aggregates: Mapping[str, Any]) -> dict[str, Any]:
    """Per-variant summaries, treatment-vs-control comparisons, health checks and the decision."""
    control = experiment["control"]
    metrics = metric_names(aggregates, experiment["primary_metric"])
    summaries = [summarize_variant(variant, control, aggregates, metrics) for variant in experiment["variants"]]
    comparisons = compare_all(summaries, control, metrics, experiment.get("multiple_testing", "holm"))
    add_sequential(comparisons, summaries, experiment["alpha"], experiment.get("planned_sample_size"))
    add_cuped(comparisons, aggregates.get("covariates", {}))
    health = health_check(experiment, summaries)
    decision, winner, reason = decide(experiment, summaries, comparisons, health)
    stats: dict[str, Any] = {
        "experiment_id": experiment["id"], "name": experiment["name"], "status": experiment["status"],
        "control": control, "primary_metric": experiment["primary_metric"], "alpha": experiment["alpha"],
        "variants": summaries, "comparisons": comparisons, "health": health,
        "decision": decision, "winner": winner, "reason": reason,
    }
    if len(summaries) == 2:
        legacy_a, legacy_b = sorted(summaries, key=lambda s: not s["is_control"])
        stats["variant_a"], stats["variant_b"] = legacy_summary(legacy_a), legacy_summary(legacy_b)
    return stats


def summarize_variant(
    variant: Mapping[str, Any], control: str, aggregates: Mapping[str, Any], metrics: list[str],
) -> dict[str, Any]:
    """n and successes, conversion with a Wilson CI, and the mean (with CI) of every numeric metric."""
    name = variant["name"]
    results = aggregates["results"].get(name, {"n": 0, "successes": 0, "rating": EMPTY_SUMS})
    n, successes = results["n"], results["successes"]
    interval = st.wilson_interval(successes, n, CONFIDENCE)
    summary: dict[str, Any] = {
        "name": name, "model": variant["model"], "weight": variant["weight"], "is_control": name == control,
        "n": n, "successes": successes,
        "conversion": {"rate": successes / n if n else None, "ci": _pair(interval)},
        "rating": mean_summary(results["rating"]),
        **({"prompt_ref": variant["prompt_ref"]} if variant.get("prompt_ref") else {}),
    }
    metric_sums = aggregates["metrics"].get(name, {})
    for metric in (m for m in metrics if m not in ("conversion", "rating")):
        summary[metric] = mean_summary(metric_sums.get(metric, EMPTY_SUMS))
    summary["assigned"] = aggregates.get("assignments", {}).get(name, 0)
    summary["exposures"] = aggregates.get("exposures", {}).get(name, 0)
    return summary


def mean_summary(sums: Mapping[str, float]) -> dict[str, Any]:
    """Mean, sample standard deviation (n - 1) and a t interval from a count, sum and sum of squares."""
    n = int(sums["n"])
    mean, variance = st.moments(n, sums["sum"], sums["sum_sq"])
    return {"n": n, "mean": mean, "std": math.sqrt(variance) if variance is not None else None,
            "variance": variance, "ci": _pair(st.mean_interval(n, mean, variance, CONFIDENCE))}


def metric_names(aggregates: Mapping[str, Any], primary_metric: str) -> list[str]:
    """The core metrics, then the primary metric and every other numeric metric any variant has."""
    extra = {name for per_variant in aggregates["metrics"].values() for name in per_variant} | {primary_metric}
    extra -= set(CORE_METRICS)
    return [*CORE_METRICS, *sorted(extra)]


def compare_all(summaries: list[dict[str, Any]], control: str, metrics: list[str],
                multiple_testing: str = "holm") -> list[dict[str, Any]]:
    """One comparison per treatment against the control; adjusted across treatments when > 2 variants, by Holm
    or (`multiple_testing="bh"`) Benjamini-Hochberg."""
    base = next(s for s in summaries if s["name"] == control)
    treatments = [s for s in summaries if s["name"] != control]
    comparisons = [{"variant": t["name"], "control": control,
                    "metrics": {metric: compare_metric(metric, t, base) for metric in metrics}}
                   for t in treatments]
    for metric in metrics:
        raw = [c["metrics"][metric]["p_value"] for c in comparisons]
        adjust = st.bh_adjust if multiple_testing == "bh" else st.holm_adjust
        adjusted = adjust(raw) if len(summaries) > 2 else raw
        for comparison, p_adjusted in zip(comparisons, adjusted, strict=True):
            comparison["metrics"][metric]["p_value_adjusted"] = p_adjusted
    return comparisons


def add_sequential(comparisons: list[dict[str, Any]], summaries: list[dict[str, Any]], alpha: float,
                   planned_sample_size: int | None = None) -> None:
    """Anytime-valid figures beside the fixed-horizon ones (mSPRT, see `sequential`): safe to read at every look.

    `sequential_p_value` is this look's value (the always-valid p-value is its running minimum over looks), and
    `confidence_sequence` the 1 - alpha interval for the absolute lift that holds at every look at once. With a
    planned sample size, each pair's test is calibrated to its share of it (by weight) and spends all of alpha by
    then; `sequential_horizon` gives that share, and past it the open-ended test takes over.
    """
    by_name = {s["name"]: s for s in summaries}
    total_weight = sum(s["weight"] for s in summaries)
    for comparison in comparisons:
        t, c = by_name[comparison["variant"]], by_name[comparison["control"]]
        horizon = (round(planned_sample_size * (t["weight"] + c["weight"]) / total_weight)
                   if planned_sample_size is not None and total_weight > 0 else None)
        for metric, entry in comparison["metrics"].items():
            if metric == "conversion":
                variance = sequential.proportion_variance(t["successes"], t["n"], c["successes"], c["n"])
                n = t["n"] + c["n"]
            else:
                m_t, m_c = t.get(metric, mean_summary(EMPTY_SUMS)), c.get(metric, mean_summary(EMPTY_SUMS))
                variance = (m_t["variance"] / m_t["n"] + m_c["variance"] / m_c["n"]
                            if m_t["variance"] is not None and m_c["variance"] is not None else None)
                n = m_t["n"] + m_c["n"]
            diff = entry["absolute_lift"]
            p_value, interval = (None, None) if diff is None else sequential.sequential_test(
                diff, variance, n, alpha, horizon=horizon)
            entry["sequential_p_value"], entry["confidence_sequence"] = p_value, _pair(interval)
            entry["sequential_horizon"] = horizon if horizon is not None and n <= horizon else None


def compare_metric(metric: str, treatment: Mapping[str, Any], control: Mapping[str, Any]) -> dict[str, Any]:
    """Test, lift and chance to win for one metric; chance_to_win means "better", lower being better for costs."""
    if metric == "conversion":
        entry = _compare_conversion(treatment, control)
    else:
        entry = _compare_mean(treatment.get(metric, mean_summary(EMPTY_SUMS)),
                              control.get(metric, mean_summary(EMPTY_SUMS)))
    entry["higher_is_better"] = metric not in LOWER_IS_BETTER
    if metric in LOWER_IS_BETTER and entry["chance_to_win"] is not None:
        entry["chance_to_win"] = 1.0 - entry["chance_to_win"]
    if metric in LOWER_IS_BETTER and entry["expected_loss"] is not None:
        loss = entry["expected_loss"]
        entry["expected_loss"] = {"treatment": loss["control"], "control": loss["treatment"]}
    return entry


def _compare_conversion(treatment: Mapping[str, Any], control: Mapping[str, Any]) -> dict[str, Any]:
    x_t, n_t, x_c, n_c = treatment["successes"], treatment["n"], control["successes"], control["n"]
    test = st.two_proportion_ztest(x_t, n_t, x_c, n_c)
    lift = st.proportion_lift(x_t, n_t, x_c, n_c, CONFIDENCE)
    return _entry("two_proportion_z", control["conversion"]["rate"], treatment["conversion"]["rate"], test, lift,
                  st.chance_to_beat_beta(x_t, n_t, x_c, n_c), expected_loss_beta(x_t, n_t, x_c, n_c))


def _compare_mean(treatment: Mapping[str, Any], control: Mapping[str, Any]) -> dict[str, Any]:
    if treatment["variance"] is None or control["variance"] is None:
        return _entry("welch_t", control["mean"], treatment["mean"], st.TestResult(None, None, None), None, None,
                      None)
    args = (treatment["mean"], treatment["variance"], treatment["n"],
            control["mean"], control["variance"], control["n"])
    test = st.welch_ttest(*args)
    lift = st.mean_lift(*args, df=test.df, confidence=CONFIDENCE)
    return _entry("welch_t", control["mean"], treatment["mean"], test, lift,
                  st.chance_to_beat_normal(lift.absolute, test.se), expected_loss_normal(lift.absolute, test.se))


def _entry(test_name: str, control_value: float | None, treatment_value: float | None, test: st.TestResult,
           lift: st.Lift | None, chance: float | None, loss: ExpectedLoss | None) -> dict[str, Any]:
    return {
        "test": test_name, "control_value": control_value, "treatment_value": treatment_value,
        "absolute_lift": lift.absolute if lift else None, "absolute_lift_ci": _pair(lift.absolute_ci if lift else None),
        "relative_lift": lift.relative if lift else None, "relative_lift_ci": _pair(lift.relative_ci if lift else None),
        "statistic": test.statistic, "df": test.df, "p_value": test.p_value, "p_value_adjusted": test.p_value,
        "chance_to_win": chance,
        # Risk of shipping each arm: the metric given up on average if it is the worse one ("better" as above).
        "expected_loss": {"treatment": loss.treatment, "control": loss.control} if loss else None,
    }


def add_cuped(comparisons: list[dict[str, Any]], covariates: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> None:
    """A `cuped` entry on each metric whose every variant has pre-period sums, `covariates[variant][metric]`.

    The store sums (n, sum_x, sum_y, sum_xx, sum_yy, sum_xy) over the outcomes of the experiment's `cuped_metrics`,
    each of which carries its unit's pre-period value.
    """
    if not comparisons:
        return
    names = [comparisons[0]["control"], *(c["variant"] for c in comparisons)]
    for metric in sorted({m for per_variant in covariates.values() for m in per_variant}):
        if metric not in comparisons[0]["metrics"] or any(metric not in covariates.get(n, {}) for n in names):
            continue
        adjusted = cuped.adjust({name: cuped.CovariateSums.from_mapping(covariates[name][metric]) for name in names})
        if adjusted is None:
            continue
        theta, moments = adjusted
        for comparison in comparisons:
            t, c = moments[comparison["variant"]], moments[comparison["control"]]
            test = st.welch_ttest(t.mean, t.variance, t.n, c.mean, c.variance, c.n)
            lift = st.mean_lift(t.mean, t.variance, t.n, c.mean, c.variance, c.n, df=test.df, confidence=CONFIDENCE)
            comparison["metrics"][metric]["cuped"] = {
                "theta": theta, "absolute_lift": lift.absolute, "absolute_lift_ci": _pair(lift.absolute_ci),
                "p_value": test.p_value, "variance_ratio": cuped.variance_ratio(t, c),
            }


def health_check(experiment: Mapping[str, Any], summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """Sample-ratio mismatch, the minimum-data rule, and the sample size the configured MDE needs."""
    counts = [s["n"] for s in summaries]
    weights = [s["weight"] for s in summaries]
    checked = sum(counts) >= 8 * len(summaries)
    p_value = st.srm_pvalue(counts, weights) if checked else None
    sequential_p = sequential.srm_sequential_pvalue(counts, weights) if checked else None
    total_weight = sum(weights)
    return {
        "srm": {"checked": checked, "p_value": p_value, "flagged": p_value is not None and p_value < 0.001,
                "threshold": 0.001, "sequential_p_value": sequential_p,
                "sequential_flagged": sequential_p is not None and sequential_p < 0.001,
                "observed": {s["name"]: s["n"] for s in summaries},
                "expected_share": {s["name"]: s["weight"] / total_weight for s in summaries}},
        "min_sample_size": experiment["min_sample_size"], "min_conversions": experiment["min_conversions"],
        "enough_data": enough_data(experiment, summaries),
        "mde": experiment["mde"], "power": experiment["power"],
        "required_sample_size_per_arm": required_sample_size(experiment, summaries),
    }


def required_sample_size(experiment: Mapping[str, Any], summaries: list[dict[str, Any]]) -> int | None:
    """Per-arm n for the MDE at the control's current baseline of the primary metric (None until known)."""
    mde, metric = experiment["mde"], experiment["primary_metric"]
    control = next(s for s in summaries if s["is_control"])
    alpha, power = experiment["alpha"], experiment["power"]
    if mde is None:
        return None
    if metric == "conversion":
        baseline = control["conversion"]["rate"]
        if baseline is None:
            return None
        return st.sample_size_proportion(baseline, mde if baseline + mde <= 1 else -mde, alpha, power)
    std = control.get(metric, {}).get("std")
    return st.sample_size_mean(std, mde, alpha, power) if std else None


def legacy_summary(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The original per-variant keys: model, total, successes, conversion_rate in percent, avg_rating."""
    rate = summary["conversion"]["rate"]
    return {"name": summary["name"], "model": summary["model"], "total": summary["n"],
            "successes": summary["successes"], "conversion_rate": rate * 100 if rate is not None else 0.0,
            "avg_rating": summary["rating"]["mean"]}


def _pair(interval: tuple[float, float] | None) -> list[float] | None:
    return [interval[0], interval[1]] if interval is not None else None
