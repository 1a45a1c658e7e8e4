"""Costs tracked by hand (the original's `track_cost`), counted once whether or not the call was managed.

A tracked cost is the cost of one call. When the database already holds a successful managed call of that model
with the same cost and tokens, recorded within `CLAIM_WINDOW` and not claimed by an earlier tracked cost, the
tracked cost is linked to it and adds nothing: the call is already counted. Otherwise it is recorded as a call
made outside the managed path (a request-log row with provider `external`), so it counts in every total.

Each tracked cost names the request-log row it counts as, and a row can be named only once (a unique
constraint): two concurrent trackers cannot claim the same call; the loser retries with the next candidate.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Integer,
    String,
    Table,
    exists,
    func,
    select,
)
from sqlalchemy.exc import IntegrityError

from models.request_log import RequestRecord, insert_records, request_log
from storage.clock import utcnow
from storage.database import ID_TYPE, inserted_id, metadata, write

CLAIM_WINDOW = timedelta(minutes=10)
# Costs match within this relative tolerance (and 1e-12 USD absolute): the same float, give or take rounding.
COST_TOLERANCE = 1e-9
EXTERNAL_PROVIDER = "external"
MAX_CLAIM_ATTEMPTS = 10

tracked_costs = Table(
    "tracked_costs",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("created_at", DateTime, nullable=False),
    Column("model", String(200), nullable=False),
    Column("cost", Float),
    Column("tokens", Integer),
    Column("request_id", String(36), nullable=False, unique=True),  # the request-log row it counts as
    Column("linked", Boolean, nullable=False),  # True: a managed call it claimed; False: an external row it added
)


@dataclass(frozen=True)
class TrackedCost:
    """One tracked cost: its id, the request-log row it counts as, and whether that was a managed call."""

    id: int
    request_id: str
    linked: bool


class TrackedCostRepository:
    """Records tracked costs by the rule of this module; each call is one transaction."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def track(self, model: str, cost: float | None, tokens: int | None, **external: Any) -> TrackedCost:
        """Link the cost to an unclaimed managed call, or record it as an external call (with `external`'s
        request-log fields, e.g. user_id, tags, input_tokens)."""
        attempts = 0
        while True:
            try:
                return self._track_once(model, cost, tokens, external)
            except IntegrityError:  # PostgreSQL: a concurrent tracker claimed the same call first
                attempts += 1
                if attempts == MAX_CLAIM_ATTEMPTS:
                    raise

    def _track_once(self, model: str, cost: float | None, tokens: int | None,
                    external: dict[str, Any]) -> TrackedCost:
        now = utcnow()
        with write(self.engine) as conn:
            request_id = _unclaimed_call(conn, model, cost, tokens, now - CLAIM_WINDOW)
            linked = request_id is not None
            if request_id is None:
                request_id = str(uuid.uuid4())
                insert_records(conn, [RequestRecord(
                    request_id=request_id, model=model, provider=EXTERNAL_PROVIDER, source="library",
                    status="success", created_at=now, cost=cost, total_tokens=tokens, **external)])
            result = conn.execute(tracked_costs.insert().values(
                created_at=now, model=model, cost=cost, tokens=tokens, request_id=request_id, linked=linked))
        return TrackedCost(inserted_id(result), request_id, linked)


def _unclaimed_call(conn: Connection, model: str, cost: float | None, tokens: int | None,
                    since: datetime) -> str | None:
    """The earliest successful managed call of `model` since `since` with these figures that nothing claimed."""
    log = request_log.c
    claimed = exists().where(tracked_costs.c.request_id == log.request_id)
    same_cost = log.cost.is_(None) if cost is None else func.abs(log.cost - cost) <= 1e-12 + COST_TOLERANCE * abs(cost)
    same_tokens = log.total_tokens.is_(None) if tokens is None else log.total_tokens == tokens
    query = (select(log.request_id)
             .where(log.model == model, log.provider != EXTERNAL_PROVIDER, log.status == "success",
                    log.created_at >= since, same_cost, same_tokens, ~claimed)
             .order_by(log.id).limit(1))
    return conn.execute(query).scalar()
