"""Cost insights: where spend is heading (`monitoring.spend_forecast`) and where it could drop
(`monitoring.cost_recommendations`). Both are as of the budget service's clock."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from api.openapi import ApiBlueprint, json_object
from api.services import services
from api.tenancy import tenant
from monitoring.cost_recommendations import chat_prices, recommendations
from monitoring.spend_forecast import spend_forecast

bp = ApiBlueprint("costs", __name__, url_prefix="/api/costs")


def forecast_report(owner: str | None = None) -> dict[str, Any]:
    """The forecast, with the budgets `owner` may see (None: all)."""
    svc = services()
    return spend_forecast(svc.engine, svc.budgets.store.list(owner), svc.budgets.clock())


def recommendations_report(owner: str | None = None) -> dict[str, Any]:
    """The recommendations; `owner` limits the repeated prompts (their text) to its own calls."""
    svc = services()
    outcomes = ((p.model_a, p.model_b, p.score_a) for p in svc.comparison_store.comparisons.pairs())
    return recommendations(svc.engine, chat_prices(svc.registry), outcomes, svc.budgets.clock(), owner)


@bp.get("/forecast", responses={200: json_object("Month-to-date spend, daily rate, month-end projection, "
                                                 "and when each budget runs out")})
def forecast() -> Response:
    """Where this month's spend is heading (rules: `monitoring.spend_forecast`)."""
    return jsonify(forecast_report(tenant()))


@bp.get("/recommendations", responses={200: json_object("Cheaper models measured as good, and repeated prompts "
                                                        "the cache would have answered")})
def cost_recommendations() -> Response:
    """Where spend could drop over the last 30 days (rules: `monitoring.cost_recommendations`)."""
    return jsonify(recommendations_report(tenant()))
