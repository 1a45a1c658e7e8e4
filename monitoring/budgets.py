"""Budgets: validated definitions, their current window's spend, and a cached view for the call guard."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import Connection, Engine

from core.errors import InvalidInputError, NotFoundError
from monitoring import rollup_reads
from monitoring.budget_store import BudgetStore
from monitoring.webhook_policy import WebhookPolicy, WebhookRefusedError
from monitoring.windows import BudgetWindow, period_window
from storage.clock import utcnow
from storage.database import read
from storage.ttl_cache import TtlCache

DEFAULT_THRESHOLDS = (0.5, 0.8, 1.0)
REQUIRED_FIELDS = ("name", "scope", "period", "limit_usd", "hard_limit", "alert_thresholds")


def _normalize_thresholds(values: list[float]) -> list[float]:
    return sorted(set(values))


def _check_url(value: str | None) -> str | None:
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return value


Name = Annotated[str, Field(min_length=1, max_length=200)]
Scope = Literal["global", "model", "user"]
Period = Literal["daily", "weekly", "monthly", "total"]
Limit = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Thresholds = Annotated[
    list[Annotated[float, Field(gt=0, le=10)]], Field(max_length=20), AfterValidator(_normalize_thresholds)
]
WebhookUrl = Annotated[str | None, Field(max_length=2000), AfterValidator(_check_url)]


class InvalidBudgetError(InvalidInputError):
    """A budget definition breaks a rule that spans fields; names the field to fix."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__([{"field": field, "reason": reason}])
        self.reason = reason


class BudgetNotFoundError(NotFoundError):
    code = "budget_not_found"

    def __init__(self, budget_id: int) -> None:
        super().__init__(f"No budget with id {budget_id}", details={"budget_id": budget_id})


def _check_target(scope: str, target: str | None) -> None:
    if scope == "global" and target is not None:
        raise InvalidBudgetError("target", "must be omitted for a global budget")
    if scope != "global" and not target:
        raise InvalidBudgetError("target", f"is required for a {scope} budget (the {scope} it applies to)")


class BudgetSpec(BaseModel):
    """A new budget, as `POST /api/budgets` accepts it."""

    model_config = ConfigDict(extra="forbid")

    name: Name
    scope: Scope
    target: Annotated[str | None, Field(min_length=1, max_length=200, validate_default=True)] = None
    period: Period
    limit_usd: Limit
    hard_limit: bool = False
    alert_thresholds: Thresholds = Field(default_factory=lambda: list(DEFAULT_THRESHOLDS))
    webhook_url: WebhookUrl = None

    @field_validator("target")
    @classmethod
    def _target_matches_scope(cls, value: str | None, info: ValidationInfo) -> str | None:
        scope = info.data.get("scope")
        if scope is not None:
            try:
                _check_target(scope, value)
            except InvalidBudgetError as exc:
                raise ValueError(exc.reason) from None
        return value


class BudgetPatch(BaseModel):
    """A partial update, as `PATCH /api/budgets/<id>` accepts it."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    scope: Scope | None = None
    target: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    period: Period | None = None
    limit_usd: Limit | None = None
    hard_limit: bool | None = None
    alert_thresholds: Thresholds | None = None
    webhook_url: WebhookUrl = None


class BudgetService:
    """CRUD plus spend per budget window; keeps a short-lived cache of all budgets for the per-call guard.

    Local changes refresh the cache at once; changes made by another process are seen within `cache_seconds`.
    """

    def __init__(self, engine: Engine, *, cache_seconds: float = 1.0, clock: Callable[[], datetime] = utcnow,
                 webhook_policy: WebhookPolicy | None = None) -> None:
        self.engine = engine
        self.store = BudgetStore(engine)
        self.clock = clock
        self.webhook_policy = webhook_policy or WebhookPolicy()
        self._cache: TtlCache[list[dict[str, Any]]] = TtlCache(cache_seconds)

    def create(self, spec: BudgetSpec) -> dict[str, Any]:
        self._check_webhook(spec.webhook_url)
        budget = self.store.create(**spec.model_dump())
        self.invalidate()
        return self.describe(budget)

    def update(self, budget_id: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Apply a partial update; raises InvalidBudgetError when scope and target no longer fit."""
        for key in REQUIRED_FIELDS:
            if key in changes and changes[key] is None:
                raise InvalidBudgetError(key, "cannot be null")
        current = self._existing(budget_id)
        if changes.get("scope") == "global" and "target" not in changes:
            changes = {**changes, "target": None}
        merged = {**current, **changes}
        _check_target(merged["scope"], merged["target"])
        self._check_webhook(changes.get("webhook_url"))
        budget = self.store.update(budget_id, **changes)
        self.invalidate()
        if budget is None:  # deleted meanwhile
            raise BudgetNotFoundError(budget_id)
        return self.describe(budget)

    def _check_webhook(self, url: str | None) -> None:
        """Refuse a webhook URL now when that can be decided now; one whose host does not resolve yet is decided
        when an alert is sent."""
        if url is None:
            return
        try:
            self.webhook_policy.destination(url)
        except WebhookRefusedError as exc:
            raise InvalidBudgetError("webhook_url", str(exc)) from None
        except OSError:
            pass

    def delete(self, budget_id: int) -> None:
        deleted = self.store.delete(budget_id)
        self.invalidate()
        if not deleted:
            raise BudgetNotFoundError(budget_id)

    def get(self, budget_id: int) -> dict[str, Any]:
        return self.describe(self._existing(budget_id))

    def _existing(self, budget_id: int) -> dict[str, Any]:
        budget = self.store.get(budget_id)
        if budget is None:
            raise BudgetNotFoundError(budget_id)
        return budget

    def list(self) -> list[dict[str, Any]]:
        return [self.describe(budget) for budget in self.store.list()]

    def alerts(self, limit: int = 100, budget_id: int | None = None) -> list[dict[str, Any]]:
        return [_jsonable(alert) for alert in self.store.alerts(limit, budget_id)]

    def describe(self, budget: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """The budget with its current window: spend, remaining and when it resets."""
        window = period_window(budget["period"], now or self.clock())
        with read(self.engine) as conn:
            spend = spend_in_window(conn, budget, window)
        current = {"window_start": window.start.isoformat() + "Z", "resets_at": window.resets_at,
                   "spend": spend, "remaining": budget["limit_usd"] - spend}
        return {**_jsonable(budget), "current": current}

    def invalidate(self) -> None:
        self._cache.clear()

    def all_cached(self) -> list[dict[str, Any]]:
        """Every budget, re-read at most once per `cache_seconds`: "no budgets" costs one tiny query per second."""
        return self._cache.get("all", self.store.list)

    def applicable(self, model_name: str, user_id: str | None) -> list[dict[str, Any]]:
        """Budgets a call of `model_name` by `user_id` counts against, in id order."""
        return [b for b in self.all_cached() if b["scope"] == "global"
                or (b["scope"] == "model" and b["target"] == model_name)
                or (b["scope"] == "user" and user_id is not None and b["target"] == user_id)]


def spend_in_window(conn: Connection, budget: dict[str, Any], window: BudgetWindow) -> float:
    """Recorded spend counted against `budget` in `window`, from the request log's rollups."""
    scope, target = budget["scope"], budget["target"]
    return rollup_reads.cost_between(
        conn, window.start, window.end, model=target if scope == "model" else None,
        user_id=target if scope == "user" else None,
    )


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() + "Z" if isinstance(v, datetime) else v) for k, v in row.items()}
