"""Experiments: the list, and one experiment's variants, assignment counts, confidence intervals, tests, health
and decision, from the same manager calls as the JSON API (`api.experiments`), with its lifecycle buttons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from ab_testing.errors import ExperimentNotFoundError, InvalidTransitionError
from ab_testing.experiment_manager import TRANSITIONS
from api.dashboard import bp, page
from api.services import services

CI_METRICS = {"conversion": "rate", "rating": "mean"}  # metric drawn as interval bars -> its estimate's key

page("experiments", "Experiments")


@dataclass(frozen=True)
class CiBar:
    """A variant's interval and estimate, with their positions in percent of an axis all variants share."""

    low: float
    high: float
    estimate: float
    left: float
    width: float
    mark: float


def ci_bars(summaries: list[dict[str, Any]], metric: str) -> dict[str, CiBar]:
    """Per variant name: conversion on [0, 1], a mean on the span of every variant's interval, so the bars compare
    at a glance; a variant without an interval yet (too few observations) has none."""
    estimate_key = CI_METRICS[metric]
    known = {s["name"]: s[metric] for s in summaries if s[metric]["ci"] is not None}
    if not known:
        return {}
    if metric == "conversion":
        low, high = 0.0, 1.0
    else:
        low, high = _padded(min(m["ci"][0] for m in known.values()), max(m["ci"][1] for m in known.values()))

    def at(value: float) -> float:
        return round(100 * (value - low) / (high - low), 2)

    bars = {}
    for name, summary in known.items():
        (lo, hi), estimate = summary["ci"], summary[estimate_key]
        bars[name] = CiBar(lo, hi, estimate, at(lo), round(at(hi) - at(lo), 2), at(estimate))
    return bars


def _padded(low: float, high: float) -> tuple[float, float]:
    """A margin around the intervals' span, so that no bar fills the axis and equal intervals still show."""
    margin = 0.1 * ((high - low) or max(abs(low), 1.0))
    return low - margin, high + margin


@bp.get("/experiments")
def experiments() -> str:
    return render_template("dashboard/experiments.html", experiments=services().experiments.list_experiments())


@bp.get("/experiments/<int:experiment_id>")
def experiment_detail(experiment_id: int) -> str:
    return _detail(experiment_id)


@bp.post(f"/experiments/<int:experiment_id>/<any({', '.join(TRANSITIONS)}):action>")
def experiment_transition(experiment_id: int, action: str) -> ResponseReturnValue:
    """The JSON API's lifecycle call; a refused transition (a stale page, say) is shown on the page with its 4xx."""
    try:
        services().experiments.transition(experiment_id, action)
    except InvalidTransitionError as refused:
        return _detail(experiment_id, refused=refused.message), refused.http_status
    return redirect(url_for("dashboard.experiment_detail", experiment_id=experiment_id), code=303)


def _detail(experiment_id: int, refused: str | None = None) -> str:
    stats = services().experiments.get_experiment_stats(experiment_id)
    if stats is None:
        raise ExperimentNotFoundError.for_id(experiment_id)
    actions = [action for action, (_, allowed) in TRANSITIONS.items() if stats["status"] in allowed]
    bars = {metric: ci_bars(stats["variants"], metric) for metric in CI_METRICS}
    return render_template("dashboard/experiment_detail.html", stats=stats, bars=bars, actions=actions,
                           refused=refused)
