"""Rollouts in the database, so that any worker may advance one and it survives restarts.

A control has at most one rollout routing its calls: `routed_control` holds the control's reference while the
rollout runs or is paused, and after a model or group candidate is promoted (all its calls then go to the
candidate, until the rollout is cancelled); NULL once it ends otherwise (a promoted version serves by itself). A
unique key on it stops two processes from starting competing rollouts of one control. Every move (`MOVES`) is
conditional on the status and step it starts from, so when several workers move a rollout at once exactly one wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    UniqueConstraint,
    or_,
    select,
    update,
)

from ab_testing.rollout_targets import Target
from ab_testing.store import insert_ignore
from models.request_log import request_log
from storage.database import metadata, read, write

Arm = Literal["candidate", "control"]

rollouts = Table(
    "rollouts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("control", String(200), nullable=False),
    Column("candidate", String(200), nullable=False),
    Column("steps", JSON, nullable=False),  # percentages of the control's traffic on the candidate
    Column("min_calls_per_step", Integer, nullable=False),
    Column("min_seconds_per_step", Float, nullable=False),
    Column("guardrails", JSON, nullable=False),
    Column("status", String(20), nullable=False),  # running, paused, rolled_back, promoted or cancelled
    Column("step", Integer, nullable=False),  # index into steps
    Column("routed_control", String(200)),  # the control while its calls are routed (see above), else NULL
    Column("created_at", DateTime, nullable=False),
    Column("step_started_at", DateTime, nullable=False),
    Column("ended_at", DateTime),
    Column("primary_metric", String(20), nullable=False, server_default="error_rate"),
    Column("non_inferiority_margin", Float),  # None: the matching guardrail's limit
    UniqueConstraint("routed_control", name="uq_rollouts_routed_control"),
)

rollout_events = Table(
    "rollout_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rollout_id", Integer, ForeignKey("rollouts.id"), nullable=False),
    Column("at", DateTime, nullable=False),
    Column("event", String(20), nullable=False),  # started or one of MOVES
    Column("step", Integer, nullable=False),
    Column("percent", Float, nullable=False),
    Column("details", JSON),
    Index("ix_rollout_events_rollout_id", "rollout_id"),
)

COUNTED_STATUSES = ("success", "error")  # refused, cancelled and pending calls say nothing about the model


@dataclass(frozen=True)
class Move:
    """A timeline event that changes the rollout: the statuses it may start from and what it leaves."""

    starts_from: tuple[str, ...]
    status: str
    next_step: bool = False
    restarts_step: bool = False  # the step's minimum time and calls count from now
    ends: bool = False
    stops_routing: bool = False


MOVES: dict[str, Move] = {
    "step": Move(("running",), "running", next_step=True, restarts_step=True),
    "rolled_back": Move(("running",), "rolled_back", ends=True, stops_routing=True),
    # A version candidate's promotion also stops routing (`move(..., stop_routing=True)`): it serves by itself.
    "promoted": Move(("running",), "promoted", ends=True),
    "paused": Move(("running",), "paused"),
    "resumed": Move(("paused",), "running", restarts_step=True),
    # A promoted rollout can be cancelled while it still routes its control's calls to a model or group candidate.
    "cancelled": Move(("running", "paused", "promoted"), "cancelled", ends=True, stops_routing=True),
    "promotion_failed": Move(("promoted",), "cancelled", stops_routing=True),
}


def can_move(rollout: Mapping[str, Any], event: str) -> bool:
    """Whether `event` may happen to `rollout` now (a promoted rollout is cancelled only while it routes)."""
    move = MOVES[event]
    return rollout["status"] in move.starts_from and not (
        event == "cancelled" and rollout["routed_control"] is None)


@dataclass(frozen=True)
class LoggedCall:
    """One request-log row a rollout routed."""

    arm: Arm
    created_at: datetime
    ok: bool
    latency: float | None
    cost: float | None


class RolloutStore:
    """Rollout rows, their timeline, and the request-log rows each routed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self, values: Mapping[str, Any], now: datetime) -> int | None:
        """Start a rollout at its first step; None when a rollout routes the control already."""
        with write(self.engine) as conn:
            rollout_id = insert_ignore(conn, rollouts, {
                **values, "status": "running", "step": 0, "routed_control": values["control"], "created_at": now,
                "step_started_at": now}, ("routed_control",))
            if rollout_id is not None:
                conn.execute(rollout_events.insert().values(rollout_id=rollout_id, at=now, event="started", step=0,
                                                            percent=values["steps"][0]))
        return rollout_id

    def get(self, rollout_id: int) -> dict[str, Any] | None:
        """The rollout with its timeline, oldest first; None when there is no such rollout."""
        with read(self.engine) as conn:
            row = conn.execute(select(rollouts).where(rollouts.c.id == rollout_id)).mappings().first()
            if row is None:
                return None
            events = conn.execute(select(rollout_events).where(rollout_events.c.rollout_id == rollout_id)
                                  .order_by(rollout_events.c.id)).mappings().all()
        return {**row, "timeline": [dict(event) for event in events]}

    def routing(self) -> list[dict[str, Any]]:
        """Every rollout routing its control's calls: the running ones (which the periodic advance reads too)
        and the promoted ones."""
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(select(rollouts).where(rollouts.c.routed_control.is_not(None)))
                    .mappings()]

    def recent(self, status: str | None, limit: int) -> list[dict[str, Any]]:
        """Rollouts without their timelines, newest first, of one status if given."""
        query = select(rollouts).order_by(rollouts.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(rollouts.c.status == status)
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    def move(self, rollout: Mapping[str, Any], event: str, now: datetime, details: Mapping[str, Any], *,
             stop_routing: bool = False) -> bool:
        """Record `event` (one of MOVES) unless another process moved the rollout first (or `event` may not happen
        to it, `can_move`); `stop_routing` also ends the routing of a move that would keep it."""
        move = MOVES[event]
        if not can_move(rollout, event):
            return False
        step = rollout["step"] + (1 if move.next_step else 0)
        values: dict[str, Any] = {"status": move.status, "step": step}
        if move.restarts_step:
            values["step_started_at"] = now
        if move.ends:
            values["ended_at"] = now
        if move.stops_routing or stop_routing:
            values["routed_control"] = None
        unchanged = [rollouts.c.id == rollout["id"], rollouts.c.status == rollout["status"],
                     rollouts.c.step == rollout["step"]]
        if event == "cancelled":
            unchanged.append(rollouts.c.routed_control.is_not(None))
        with write(self.engine) as conn:
            moved = conn.execute(update(rollouts).where(*unchanged).values(**values)).rowcount
            if moved:
                conn.execute(rollout_events.insert().values(rollout_id=rollout["id"], at=now, event=event, step=step,
                                                            percent=rollout["steps"][step], details=dict(details)))
        return bool(moved)

    def calls(self, rollout: Mapping[str, Any], until: datetime) -> list[LoggedCall]:
        """The calls the rollout routed, from its start to `until`: bounded by time and by the two arms' models
        (a group's calls are logged under its deployments, with the group in `route_group`) or prompt."""
        control, candidate = Target.parse(rollout["control"]), Target.parse(rollout["candidate"])
        names = [control.name, candidate.name]  # a model version's calls are logged under the model's name
        served = (request_log.c.prompt_name == control.name if control.kind == "prompt"
                  else or_(request_log.c.model.in_(names), request_log.c.route_group.in_(names)))
        query = (select(request_log.c.tags, request_log.c.created_at, request_log.c.status, request_log.c.latency,
                        request_log.c.cost)
                 .where(request_log.c.created_at >= rollout["created_at"], request_log.c.created_at <= until,
                        request_log.c.status.in_(COUNTED_STATUSES), served))
        arms: dict[str, Arm] = {arm_tag(rollout["id"], arm): arm for arm in ("candidate", "control")}
        with read(self.engine) as conn:
            rows = conn.execute(query).all()
        return [LoggedCall(arm, row.created_at, row.status == "success", row.latency, row.cost)
                for row in rows for arm in _arms(row.tags, arms)]


def arm_tag(rollout_id: int, arm: Arm) -> str:
    """The tag a routed call carries: `rollout:<id>:candidate` or `rollout:<id>:control`."""
    return f"rollout:{rollout_id}:{arm}"


def _arms(tags: object, arms: Mapping[str, Arm]) -> list[Arm]:
    return [arms[tag] for tag in tags if tag in arms] if isinstance(tags, list) else []
