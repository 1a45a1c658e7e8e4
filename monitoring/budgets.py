"""Budgets: validated definitions, their ownership and their current window's spend."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import Connection, Engine

from core.errors import AppError, InvalidInputError, NotFoundError
from monitoring import rollup_reads
from monitoring.budget_store import BudgetStore, CallScope
from monitoring.webhook_policy import WebhookPolicy, WebhookRefusedError
from monitoring.windows import BudgetWindow, period_window
from storage.change_stamp import ChangeStamp, StampedCache
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
Scope = Literal["global", "model", "user", "tag", "api_key"]
# Scopes whose spend is a `rollup_usage` dimension of the same name (api_key: the calls one key made).
USAGE_SCOPES = ("user", "tag", "api_key")
Period = Literal["daily", "weekly", "monthly", "total"]
Limit = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Thresholds = Annotated[
    list[Annotated[float, Field(gt=0, le=10)]], Field(max_length=20), AfterValidator(_normalize_thresholds)
]
WebhookUrl = Annotated[str | None, Field(max_length=2000), AfterValidator(_check_url)]


# How stale the spent share a budget-aware group routes by may be.
SHARE_CACHE_SECONDS = 1.0


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
    """CRUD plus spend per budget window. Every change reaches every process before its next call: on SQLite
    the budgets are reloaded when the database's budget stamp moves (one `stat` per call; see
    `storage.change_stamp`), elsewhere they are read with every call.

    `owner` is the API key a tenant acts with: it sees and changes only the budgets it created, and they
    may only limit its own calls. `owner=None` is an admin (or a service with no keys), who sees all.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow,
                 webhook_policy: WebhookPolicy | None = None) -> None:
        self.engine = engine
        self.store = BudgetStore(engine)
        self.clock = clock
        self.webhook_policy = webhook_policy or WebhookPolicy()
        self._changed = ChangeStamp(engine, "budgets")
        self._all: StampedCache[builtins.list[dict[str, Any]]] = StampedCache(self._changed, self.store.list)
        self._shares: TtlCache[float | None] = TtlCache(SHARE_CACHE_SECONDS, max_entries=1000)

    def applicable(self, call: CallScope) -> builtins.list[dict[str, Any]]:
        """The budgets a call counts against, as of the latest change any process made."""
        if self._changed.version() is None:
            with read(self.engine) as conn:
                return self.store.applicable(conn, call)
        return [budget for budget in self._all.get() if call.covers(budget)]

    def create(self, spec: BudgetSpec, owner: str | None = None) -> dict[str, Any]:
        if owner is not None:
            _check_tenant_scope(spec.scope, spec.target, owner)
        self._check_webhook(spec.webhook_url)
        budget = self.store.create(**spec.model_dump(), api_key_id=owner)
        self._changed.touch()
        return self.describe(budget)

    def update(self, budget_id: int, changes: dict[str, Any], owner: str | None = None) -> dict[str, Any]:
        """Apply a partial update; raises InvalidBudgetError when scope and target no longer fit."""
        for key in REQUIRED_FIELDS:
            if key in changes and changes[key] is None:
                raise InvalidBudgetError(key, "cannot be null")
        current = self._existing(budget_id, owner)
        if changes.get("scope") == "global" and "target" not in changes:
            changes = {**changes, "target": None}
        merged = {**current, **changes}
        _check_target(merged["scope"], merged["target"])
        if owner is not None:
            _check_tenant_scope(merged["scope"], merged["target"], owner)
        self._check_webhook(changes.get("webhook_url"))
        budget = self.store.update(budget_id, **changes)
        self._changed.touch()
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

    def delete(self, budget_id: int, owner: str | None = None) -> None:
        self._existing(budget_id, owner)
        deleted = self.store.delete(budget_id)
        self._changed.touch()
        if not deleted:
            raise BudgetNotFoundError(budget_id)

    def get(self, budget_id: int, owner: str | None = None) -> dict[str, Any]:
        return self.describe(self._existing(budget_id, owner))

    def _existing(self, budget_id: int, owner: str | None) -> dict[str, Any]:
        """The budget, if `owner` may see it: another tenant's budget is as absent as a deleted one."""
        budget = self.store.get(budget_id)
        if budget is None or (owner is not None and budget["api_key_id"] != owner):
            raise BudgetNotFoundError(budget_id)
        return budget

    def list(self, owner: str | None = None) -> list[dict[str, Any]]:
        return [self.describe(budget) for budget in self.store.list(owner)]

    def alerts(self, limit: int = 100, budget_id: int | None = None, owner: str | None = None,
               ) -> builtins.list[dict[str, Any]]:
        if budget_id is not None:
            self._existing(budget_id, owner)
        visible = None if owner is None else [b["id"] for b in self.store.list(owner)]
        return [_jsonable(alert) for alert in self.store.alerts(limit, budget_id, visible)]

    def share_used(self, name: str) -> float | None:
        """The share of the named budget's limit spent in its current window (1.0: all of it); None when no budget
        has that name. Routing asks on every call of a budget-aware group, so it is cached for a second."""
        return self._shares.get(name, lambda: self._share_used(name))

    def _share_used(self, name: str) -> float | None:
        budget = next((b for b in self.store.list() if b["name"] == name), None)
        if budget is None or budget["limit_usd"] <= 0:
            return None
        with read(self.engine) as conn:
            spend = spend_in_window(conn, budget, period_window(budget["period"], self.clock()))
        return spend / budget["limit_usd"]

    def describe(self, budget: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
        """The budget with its current window: spend, remaining and when it resets."""
        window = period_window(budget["period"], now or self.clock())
        with read(self.engine) as conn:
            spend = spend_in_window(conn, budget, window)
        current = {"window_start": window.start.isoformat() + "Z", "resets_at": window.resets_at,
                   "spend": spend, "remaining": budget["limit_usd"] - spend}
        return {**_jsonable(budget), "current": current}



def spend_in_window(conn: Connection, budget: dict[str, Any], window: BudgetWindow) -> float:
    """Recorded spend counted against `budget` in `window`, from the request log's rollups."""
    scope, target = budget["scope"], budget["target"]
    return rollup_reads.cost_between(
        conn, window.start, window.end, model=target if scope == "model" else None,
        usage=(scope, target) if scope in USAGE_SCOPES else None,
    )


def _check_tenant_scope(scope: str, target: str | None, owner: str) -> None:
    """A managed key may limit only its own calls: scope `api_key` on itself (admins budget everything)."""
    if scope != "api_key" or target != owner:
        raise TenantScopeError(owner)


class TenantScopeError(AppError):
    """A managed key tried to create a budget that would limit other keys' calls."""

    code = "forbidden"
    http_status = 403

    def __init__(self, owner: str) -> None:
        super().__init__(f"A managed API key can only budget its own calls: use scope 'api_key' with target "
                         f"{owner!r}", details={"scope": "api_key", "target": owner})


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() + "Z" if isinstance(v, datetime) else v) for k, v in row.items()}
