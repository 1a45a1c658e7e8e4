"""Budget CRUD and the alerts they raised."""

from __future__ import annotations

from flask import Response, jsonify
from pydantic import BaseModel, ConfigDict, Field

from api.openapi import MAX_ROW_ID, ApiBlueprint, RowId, json_object
from api.services import canonical_model, services
from api.tenancy import tenant
from monitoring.budgets import BudgetPatch, BudgetSpec

bp = ApiBlueprint("budgets", __name__, url_prefix="/api")


class AlertsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=1000)
    budget_id: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)


class BudgetPath(BaseModel):
    budget_id: RowId


BUDGET = json_object("The budget with its current spend in the window")


@bp.post("/budgets", responses={201: BUDGET})
def create_budget(body: BudgetSpec) -> tuple[Response, int]:
    """Create a budget on all calls, a model, a user, a tag or an API key; a managed key budgets only its own."""
    spec = body
    if spec.scope == "model" and spec.target:
        spec = spec.model_copy(update={"target": canonical_model(spec.target)})
    return jsonify(services().budgets.create(spec, owner=tenant())), 201


@bp.get("/budgets", responses={200: json_object("Every budget")})
def list_budgets() -> Response:
    """All budgets with their spend."""
    budgets = services().budgets.list(owner=tenant())
    return jsonify({"budgets": budgets, "count": len(budgets)})


@bp.get("/budgets/<int:budget_id>", responses={200: BUDGET})
def get_budget(path: BudgetPath) -> Response:
    """One budget."""
    return jsonify(services().budgets.get(path.budget_id, owner=tenant()))


@bp.patch("/budgets/<int:budget_id>", responses={200: BUDGET})
def update_budget(path: BudgetPath, body: BudgetPatch) -> Response:
    """Change some of a budget's fields."""
    budgets, owner = services().budgets, tenant()
    changes = body.model_dump(exclude_unset=True)
    if changes.get("target") and (changes.get("scope") or budgets.get(path.budget_id, owner)["scope"]) == "model":
        changes["target"] = canonical_model(changes["target"])
    return jsonify(budgets.update(path.budget_id, changes, owner=owner))


@bp.delete("/budgets/<int:budget_id>", responses={204: None})
def delete_budget(path: BudgetPath) -> tuple[str, int]:
    """Delete a budget."""
    services().budgets.delete(path.budget_id, owner=tenant())
    return "", 204


@bp.get("/alerts", responses={200: json_object("The newest alerts")})
def list_alerts(query: AlertsQuery) -> Response:
    """Budget alerts, newest first, optionally of one budget."""
    alerts = services().budgets.alerts(query.limit, query.budget_id, owner=tenant())
    return jsonify({"alerts": alerts, "count": len(alerts)})
