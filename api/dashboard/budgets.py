"""Budgets and their alerts: spend against each limit, and forms to create, edit and delete budgets.

The forms go through the JSON API's rules (`BudgetSpec`, `BudgetPatch`, `BudgetService`); a success redirects back
to the page (post/redirect/get), a refused form is shown again with the reasons and the status the API would answer.
"""

from __future__ import annotations

from typing import Any

from flask import redirect, render_template, request, url_for
from pydantic import ValidationError
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from api.dashboard import bp, page
from api.services import canonical_model, services
from core.errors import AppError, InvalidInputError, validation_fields
from monitoring.budgets import BudgetPatch, BudgetSpec

RECENT_ALERTS = 20
FIELDS = ("name", "scope", "target", "period", "limit_usd", "alert_thresholds", "webhook_url")

page("budgets", "Budgets")


@bp.get("/budgets")
def budgets() -> str:
    return _render()


@bp.post("/budgets")
def create_budget() -> Response | tuple[str, int]:
    form = _fields(request.form)
    try:
        spec = BudgetSpec.model_validate(_canonical_target(form))
        services().budgets.create(spec)
    except (ValidationError, AppError) as exc:
        return _refused(exc, form=form)
    return redirect(url_for("dashboard.budgets"))


@bp.post("/budgets/<int:budget_id>")
def update_budget(budget_id: int) -> Response | tuple[str, int]:
    try:
        changes = BudgetPatch.model_validate(_canonical_target(_fields(request.form))).model_dump(exclude_unset=True)
        services().budgets.update(budget_id, changes)
    except (ValidationError, AppError) as exc:
        return _refused(exc, budget_id=budget_id)
    return redirect(url_for("dashboard.budgets"))


@bp.post("/budgets/<int:budget_id>/delete")
def delete_budget(budget_id: int) -> Response | tuple[str, int]:
    try:
        services().budgets.delete(budget_id)
    except AppError as exc:
        return _refused(exc, budget_id=budget_id)
    return redirect(url_for("dashboard.budgets"))


def _fields(form: MultiDict[str, str]) -> dict[str, Any]:
    """A budget form as the JSON API's body: blank optional fields are unset (target, webhook: none), thresholds
    are comma-separated, and an unticked hard-limit box is a soft limit."""
    body: dict[str, Any] = {name: form[name].strip() for name in FIELDS if form.get(name, "").strip()}
    body.setdefault("target", None)
    body.setdefault("webhook_url", None)
    if "alert_thresholds" in body:
        body["alert_thresholds"] = [part.strip() for part in body["alert_thresholds"].split(",")]
    body["hard_limit"] = "hard_limit" in form
    return body


def _canonical_target(body: dict[str, Any]) -> dict[str, Any]:
    """A model budget names the model an alias stands for, as the JSON API stores it."""
    if body.get("scope") == "model" and body.get("target"):
        return {**body, "target": canonical_model(body["target"])}
    return body


def _refused(exc: ValidationError | AppError, **context: Any) -> tuple[str, int]:
    error = InvalidInputError(validation_fields(exc)) if isinstance(exc, ValidationError) else exc
    return _render(error=error, **context), error.http_status


def _render(*, error: AppError | None = None, form: dict[str, Any] | None = None, budget_id: int | None = None,
            ) -> str:
    svc = services()
    return render_template("dashboard/budgets.html", budgets=svc.budgets.list(),
                           alerts=svc.budgets.alerts(RECENT_ALERTS), error=error,
                           fields=error.details.get("fields", []) if error else [], form=form or {},
                           failed_budget=budget_id)
