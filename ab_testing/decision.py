"""The decision rule: name a winner only with enough data, no sample-ratio mismatch, and adjusted p < alpha."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

WINNER = "winner"
NO_DIFFERENCE = "no_significant_difference"
INSUFFICIENT = "insufficient_data"
SRM = "sample_ratio_mismatch"


def enough_data(experiment: Mapping[str, Any], summaries: Sequence[Mapping[str, Any]]) -> bool:
    """Every arm has the minimum observations of the primary metric (and conversions, when it is conversion)."""
    metric = experiment["primary_metric"]
    for summary in summaries:
        if metric == "conversion":
            if summary["n"] < experiment["min_sample_size"] or summary["successes"] < experiment["min_conversions"]:
                return False
        elif summary.get(metric, {}).get("n", 0) < experiment["min_sample_size"]:
            return False
    return True


def decide(
    experiment: Mapping[str, Any], summaries: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]], health: Mapping[str, Any],
) -> tuple[str, str | None, str]:
    """(decision, winner or None, a sentence saying why)."""
    metric, alpha = experiment["primary_metric"], experiment["alpha"]
    if health["srm"]["flagged"]:
        return SRM, None, (f"Arm sizes do not match the configured weights (chi-square p = "
                           f"{health['srm']['p_value']:.2g} < 0.001): fix the assignment before trusting results")
    if not health["enough_data"]:
        return INSUFFICIENT, None, (f"Each arm needs at least {experiment['min_sample_size']} observations"
                                    + (f" and {experiment['min_conversions']} conversions"
                                       if metric == "conversion" else "") + f" of {metric}")
    entries = [(c["variant"], c["metrics"][metric]) for c in comparisons]
    significant = [(name, e) for name, e in entries
                   if e["p_value_adjusted"] is not None and e["p_value_adjusted"] < alpha]
    better = [(name, e) for name, e in significant if _improves(e)]
    if better:
        name, entry = max(better, key=lambda item: _signed_lift(item[1]))
        return WINNER, name, (f"{name} beats {experiment['control']} on {metric} "
                              f"(adjusted p = {entry['p_value_adjusted']:.3g} < {alpha})")
    if entries and len(significant) == len(entries):
        return WINNER, experiment["control"], (f"Every treatment is worse than the control on {metric} "
                                               f"(adjusted p < {alpha})")
    return NO_DIFFERENCE, None, f"No treatment differs from the control on {metric} at adjusted p < {alpha}"


def _signed_lift(entry: Mapping[str, Any]) -> float:
    lift = entry["absolute_lift"] or 0.0
    return lift if entry["higher_is_better"] else -lift


def _improves(entry: Mapping[str, Any]) -> bool:
    return _signed_lift(entry) > 0
