"""Budget CRUD and the alerts they raised."""

from __future__ import annotations

from flask import Blueprint, jsonify
from pydantic import BaseModel, ConfigDict, Field

from api.errors import ApiError
from api.validation import parse_body, parse_query
from api.wiring import services
from models.errors import UnknownModelError
from monitoring.budgets import BudgetPatch, BudgetSpec, InvalidBudgetError
from storage.budget_store import BudgetNameTakenError

bp = Blueprint("budgets", __name__, url_prefix="/api")


class AlertsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=100, ge=1, le=1000)
    budget_id: int | None = None


@bp.post("/budgets")
def create_budget():  # noqa: ANN201
    spec = parse_body(BudgetSpec)
    if spec.scope == "model":
        spec = spec.model_copy(update={"target": _canonical_model(spec.target)})
    try:
        budget = services().budgets.create(spec)
    except BudgetNameTakenError:
        raise _name_taken(spec.name) from None
    return jsonify(budget), 201


@bp.get("/budgets")
def list_budgets():  # noqa: ANN201
    budgets = services().budgets.list()
    return jsonify({"budgets": budgets, "count": len(budgets)})


@bp.get("/budgets/<int:budget_id>")
def get_budget(budget_id: int):  # noqa: ANN201
    return jsonify(_found(services().budgets.get(budget_id), budget_id))


@bp.patch("/budgets/<int:budget_id>")
def update_budget(budget_id: int):  # noqa: ANN201
    changes = parse_body(BudgetPatch).model_dump(exclude_unset=True)
    if changes.get("target") and (changes.get("scope") or _scope_of(budget_id)) == "model":
        changes["target"] = _canonical_model(changes["target"])
    try:
        budget = services().budgets.update(budget_id, changes)
    except InvalidBudgetError as exc:
        raise ApiError(400, "validation_error", f"Invalid request: {exc}",
                       fields=[{"field": exc.field, "reason": exc.reason}]) from None
    except BudgetNameTakenError:
        raise _name_taken(changes["name"]) from None
    return jsonify(_found(budget, budget_id))


@bp.delete("/budgets/<int:budget_id>")
def delete_budget(budget_id: int):  # noqa: ANN201
    if not services().budgets.delete(budget_id):
        raise _not_found(budget_id)
    return "", 204


@bp.get("/alerts")
def list_alerts():  # noqa: ANN201
    query = parse_query(AlertsQuery)
    alerts = services().budgets.alerts(query.limit, query.budget_id)
    return jsonify({"alerts": alerts, "count": len(alerts)})


def _canonical_model(name: str | None) -> str | None:
    """A budget on an alias applies to the model it names; unknown names are kept (models registered later)."""
    try:
        return services().registry.resolve(name) if name else name
    except UnknownModelError:
        return name


def _scope_of(budget_id: int) -> str | None:
    budget = services().budgets.store.get(budget_id)
    return budget["scope"] if budget else None


def _found(budget: dict | None, budget_id: int) -> dict:
    if budget is None:
        raise _not_found(budget_id)
    return budget


def _not_found(budget_id: int) -> ApiError:
    return ApiError(404, "budget_not_found", f"No budget with id {budget_id}", budget_id=budget_id)


def _name_taken(name: str) -> ApiError:
    return ApiError(409, "budget_name_taken", f"A budget named {name!r} already exists", name=name)
