"""Budgets, their in-flight cost reservations and their alerts; the database arbitrates between processes."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    bindparam,
    delete,
    func,
    select,
    update,
)

from core.errors import ConflictError
from storage.clock import utcnow
from storage.database import inserted_id, is_sqlite, metadata, read, upsert_into, write

budgets = Table(
    "budgets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("scope", String(10), nullable=False),
    Column("target", String(200)),
    Column("period", String(10), nullable=False),
    Column("limit_usd", Float, nullable=False),
    Column("hard_limit", Boolean, nullable=False),
    Column("alert_thresholds", JSON, nullable=False),
    Column("webhook_url", String(2000)),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    # The managed API key that owns the budget: it sees it and it counts only that key's calls.
    # NULL: created by an admin (or with no keys configured), it counts every call.
    Column("api_key_id", String(64)),
)

budget_reservations = Table(
    "budget_reservations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("budget_id", Integer, ForeignKey("budgets.id", ondelete="CASCADE"), nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("request_id", String(36), nullable=False),
    Column("amount", Float, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_budget_reservations_window", "budget_id", "window_start"),
    Index("ix_budget_reservations_request", "request_id"),
)

budget_alerts = Table(
    "budget_alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("budget_id", Integer, ForeignKey("budgets.id", ondelete="SET NULL")),
    Column("budget_name", String(200), nullable=False),
    Column("threshold", Float, nullable=False),
    Column("window_start", DateTime, nullable=False),
    Column("window_end", DateTime),
    Column("spend", Float, nullable=False),
    Column("limit_usd", Float, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("webhook_status", String(20)),
    Column("webhook_attempts", Integer, nullable=False, server_default="0"),
    Column("webhook_error", Text),  # why the last delivery failed, or why the URL was refused
    UniqueConstraint("budget_id", "window_start", "threshold", name="uq_budget_alerts_window_threshold"),
)


# Built once (this runs with every call; building a query per call cost ~4x running it). A NULL user or key
# never equals a target, and an empty tag list matches nothing.
_APPLICABLE = select(budgets).where(
    (budgets.c.scope == "global")
    | ((budgets.c.scope == "model") & (budgets.c.target == bindparam("model")))
    | ((budgets.c.scope == "user") & (budgets.c.target == bindparam("user_id")))
    | ((budgets.c.scope == "api_key") & (budgets.c.target == bindparam("api_key_id")))
    | ((budgets.c.scope == "tag") & budgets.c.target.in_(bindparam("tags", expanding=True)))
).order_by(budgets.c.id)
_HARD_APPLICABLE = _APPLICABLE.where(budgets.c.hard_limit.is_(True))
_HARD_APPLICABLE_LOCKED = _HARD_APPLICABLE.with_for_update()


@dataclass(frozen=True)
class CallScope:
    """What decides which budgets a call counts against."""

    model: str
    user_id: str | None = None
    api_key_id: str | None = None
    tags: tuple[str, ...] = ()

    def covers(self, budget: dict[str, Any]) -> bool:
        """`_APPLICABLE`'s rule for one budget already read (the cached list): keep the two in step."""
        scope, target = budget["scope"], budget["target"]
        return (scope == "global" or (scope == "model" and target == self.model)
                or (scope == "user" and target is not None and target == self.user_id)
                or (scope == "api_key" and target is not None and target == self.api_key_id)
                or (scope == "tag" and target in self.tags))


class BudgetNameTakenError(ConflictError):
    """Another budget already has this name."""

    code = "budget_name_taken"

    def __init__(self, name: str) -> None:
        super().__init__(f"A budget named {name!r} already exists", details={"name": name})


class BudgetStore:
    """CRUD for budgets plus the atomic pieces the budget guard composes in one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, **values: Any) -> dict[str, Any]:
        now = utcnow()
        with write(self.engine) as conn:
            self._check_name(conn, values["name"], None)
            budget_id = inserted_id(conn.execute(budgets.insert().values(**values, created_at=now, updated_at=now)))
            return dict(conn.execute(select(budgets).where(budgets.c.id == budget_id)).mappings().one())

    def update(self, budget_id: int, **values: Any) -> dict[str, Any] | None:
        with write(self.engine) as conn:
            if "name" in values:
                self._check_name(conn, values["name"], budget_id)
            result = conn.execute(
                update(budgets).where(budgets.c.id == budget_id).values(**values, updated_at=utcnow())
            )
            if result.rowcount == 0:
                return None
        return self.get(budget_id)

    def delete(self, budget_id: int) -> bool:
        with write(self.engine) as conn:
            return conn.execute(delete(budgets).where(budgets.c.id == budget_id)).rowcount > 0

    def get(self, budget_id: int) -> dict[str, Any] | None:
        with read(self.engine) as conn:
            row = conn.execute(select(budgets).where(budgets.c.id == budget_id)).mappings().first()
        return dict(row) if row else None

    def list(self, owner: str | None = None) -> list[dict[str, Any]]:
        """Every budget, or only those `owner` (an API key id) created."""
        query = select(budgets).order_by(budgets.c.id)
        if owner is not None:
            query = query.where(budgets.c.api_key_id == owner)
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    @staticmethod
    def _check_name(conn: Connection, name: str, budget_id: int | None) -> None:
        query = select(budgets.c.id).where(budgets.c.name == name)
        existing = conn.execute(query).scalar()
        if existing is not None and existing != budget_id:
            raise BudgetNameTakenError(name)

    # The pieces below run on the caller's connection, inside its transaction.

    @staticmethod
    def applicable(conn: Connection, call: CallScope, *, hard_only: bool = False) -> builtins.list[dict[str, Any]]:
        """The budgets a call counts against, in id order.

        With `hard_only` inside a write transaction on PostgreSQL it also locks them (FOR UPDATE), so
        concurrent reservers of a budget serialize; SQLite's BEGIN IMMEDIATE already has.
        """
        query = _HARD_APPLICABLE if hard_only else _APPLICABLE
        if hard_only and not is_sqlite(conn):
            query = _HARD_APPLICABLE_LOCKED
        params = {"model": call.model, "user_id": call.user_id, "api_key_id": call.api_key_id,
                  "tags": list(call.tags)}
        return [dict(row) for row in conn.execute(query, params).mappings()]

    @staticmethod
    def reserved(conn: Connection, budget_id: int, window_start: datetime, fresh_after: datetime) -> float:
        """Cost held by calls still in flight in this window (reservations older than `fresh_after` expired)."""
        query = select(func.sum(budget_reservations.c.amount)).where(
            budget_reservations.c.budget_id == budget_id,
            budget_reservations.c.window_start == window_start,
            budget_reservations.c.created_at > fresh_after,
        )
        return float(conn.execute(query).scalar() or 0.0)

    @staticmethod
    def reserve(conn: Connection, budget_id: int, window_start: datetime, request_id: str, amount: float) -> None:
        conn.execute(budget_reservations.insert().values(
            budget_id=budget_id, window_start=window_start, request_id=request_id, amount=amount,
            created_at=utcnow(),
        ))

    def release(self, request_id: str, expired_before: datetime) -> None:
        """Drop a settled call's reservations, and any left behind by a crashed process."""
        with write(self.engine) as conn:
            conn.execute(delete(budget_reservations).where(
                (budget_reservations.c.request_id == request_id)
                | (budget_reservations.c.created_at <= expired_before)
            ))

    # Alerts.

    def add_alert(self, **values: Any) -> dict[str, Any] | None:
        """Persist an alert once per budget, window and threshold; None when it already exists."""
        with write(self.engine) as conn:
            stmt = upsert_into(conn, budget_alerts).values(**values, created_at=utcnow()).on_conflict_do_nothing(
                index_elements=["budget_id", "window_start", "threshold"]
            ).returning(budget_alerts.c.id)
            alert_id = conn.execute(stmt).scalar()
            if alert_id is None:
                return None
            row = conn.execute(select(budget_alerts).where(budget_alerts.c.id == alert_id)).mappings().one()
        return dict(row)

    def set_webhook_status(self, alert_id: int, status: str, attempts: int, error: str | None = None) -> None:
        with write(self.engine) as conn:
            conn.execute(update(budget_alerts).where(budget_alerts.c.id == alert_id).values(
                webhook_status=status, webhook_attempts=attempts, webhook_error=error))

    def alerts(self, limit: int = 100, budget_id: int | None = None,
               budget_ids: builtins.list[int] | None = None) -> builtins.list[dict[str, Any]]:
        """Newest first; of one budget, or of `budget_ids` (a tenant's) when given."""
        query = select(budget_alerts).order_by(budget_alerts.c.id.desc()).limit(limit)
        if budget_id is not None:
            query = query.where(budget_alerts.c.budget_id == budget_id)
        if budget_ids is not None:
            query = query.where(budget_alerts.c.budget_id.in_(budget_ids))
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(query).mappings()]
