"""Rollouts: traffic that names a control moves to a candidate step by step, and back at once when a guardrail breaks.

While a rollout runs, a call naming its control goes to the candidate when the caller's GrowthBook hash
(`gbhash("rollout:<id>", user)`) is below the step's percentage. The threshold only grows, so a user on the candidate
stays there at every later step. Callers without a user or key stay on the control. Once promoted, every call
naming the control goes to the candidate, for good. The call carries the tag
`rollout:<id>:candidate` or `rollout:<id>:control`, which is how the guardrails find it in the request log.

`advance` (called by a periodic chore in every worker, or explicitly) reads the calls since the rollout started and
applies `ab_testing.guardrails`: a breach rolls back; a step whose minimum calls (on the candidate, during the step)
and minimum seconds are met, and whose every guardrail passes, moves on; after the last (100%) step, promotes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from ab_testing.guardrails import ArmCalls, Check, evaluate
from ab_testing.hashing import gbhash
from ab_testing.rollout_spec import Guardrails, RolloutSpec
from ab_testing.rollout_store import Arm, LoggedCall, RolloutStore, arm_tag
from core.errors import ConflictError, InvalidInputError, NotFoundError
from models.errors import UnknownModelError
from storage.clock import utcnow
from storage.ttl_cache import TtlCache

if TYPE_CHECKING:
    from models.model_registry import ModelRegistry

log = logging.getLogger(__name__)

# How long a process routes on its copy of the routing rollouts: another worker's advance shows within this time.
ROUTING_CACHE_SECONDS = 1.0
RollbackHook = Callable[[dict[str, Any]], None]


class RolloutManager:
    """Creates, routes, advances and describes rollouts; `on_rollback` hears of each rollback (e.g. a webhook)."""

    def __init__(self, engine: Engine, registry: ModelRegistry, *, on_rollback: RollbackHook | None = None) -> None:
        self.store = RolloutStore(engine)
        self.registry = registry
        self.on_rollback = on_rollback
        self._routing: TtlCache[list[dict[str, Any]]] = TtlCache(ROUTING_CACHE_SECONDS)

    def create(self, spec: RolloutSpec, now: datetime | None = None) -> int:
        """Start `spec` at its first step; the control and candidate are stored by their canonical names."""
        values = {**spec.model_dump(), "control": self._canonical("control", spec.control),
                  "candidate": self._canonical("candidate", spec.candidate)}
        rollout_id = self.store.create(values, now or utcnow())
        if rollout_id is None:
            raise ConflictError(f"A rollout routes {values['control']!r} already (running or promoted)",
                                details={"control": values["control"]})
        self._routing.clear()
        return rollout_id

    def describe(self, rollout_id: int) -> dict[str, Any]:
        """The rollout's status, current step and percentage, schedule and timeline; raises NotFoundError."""
        rollout = self.store.get(rollout_id)
        if rollout is None:
            raise NotFoundError(f"No rollout with id {rollout_id}", details={"rollout_id": rollout_id})
        rollout.pop("routed_control")
        rollout["percent"] = rollout["steps"][rollout["step"]] if rollout["status"] == "running" else (
            100 if rollout["status"] == "promoted" else 0)
        for row in (rollout, *rollout["timeline"]):
            for key in ("created_at", "step_started_at", "ended_at", "at"):
                if row.get(key) is not None:
                    row[key] = row[key].isoformat() + "Z"
        return rollout

    def route(self, model: str, user: str | None) -> tuple[str, str | None]:
        """The model to call for a call naming the canonical `model`, and the tag recording the arm (None when no
        rollout routes it). A promoted rollout sends every call to the candidate."""
        rollout = next((r for r in self._routing.get("routing", self.store.routing) if r["control"] == model), None)
        if rollout is None:
            return model, None
        arm = _arm(rollout, user)
        return rollout[arm], arm_tag(rollout["id"], arm)

    def advance(self, rollout_id: int, now: datetime | None = None) -> dict[str, Any]:
        """One look: roll back on a breach, move on (or promote) when the step is done and every guardrail passes."""
        rollout = self.store.get(rollout_id)
        if rollout is None:
            raise NotFoundError(f"No rollout with id {rollout_id}", details={"rollout_id": rollout_id})
        if rollout["status"] == "running":
            self._look(rollout, now or utcnow())
        return self.describe(rollout_id)

    def advance_running(self) -> None:
        """The periodic chore: one look at every running rollout."""
        for rollout in self.store.routing():
            if rollout["status"] == "running":
                self._look(rollout, utcnow())

    def _look(self, rollout: dict[str, Any], now: datetime) -> None:
        calls = self.store.calls(rollout, now)
        checks = evaluate(_arm_calls(calls, "candidate"), _arm_calls(calls, "control"),
                          Guardrails.model_validate(rollout["guardrails"]), planned_n=2 * rollout["min_calls_per_step"])
        details = {"checks": [check.to_dict() for check in checks]}
        if any(check.verdict == "breach" for check in checks):
            self._move(rollout, "rolled_back", now, details)
        elif _step_done(rollout, calls, checks, now):
            self._move(rollout, "promoted" if rollout["step"] == len(rollout["steps"]) - 1 else "step", now, details)

    def _move(self, rollout: dict[str, Any], event: str, now: datetime, details: dict[str, Any]) -> None:
        if not self.store.move(rollout, event, now, details):
            return  # another process moved it first
        self._routing.clear()
        if event == "rolled_back":
            breached = [check["guardrail"] for check in details["checks"] if check["verdict"] == "breach"]
            log.warning("Rollout %s (%s -> %s) rolled back: %s breached", rollout["id"], rollout["control"],
                        rollout["candidate"], ", ".join(breached))
            if self.on_rollback is not None:
                self.on_rollback({"event": "rollout_rolled_back", "rollout_id": rollout["id"], "name": rollout["name"],
                                  "control": rollout["control"], "candidate": rollout["candidate"],
                                  "breached": breached, "checks": details["checks"], "at": now.isoformat() + "Z"})

    def _canonical(self, field: str, name: str) -> str:
        try:
            return self.registry.resolve(name)
        except UnknownModelError as exc:
            raise InvalidInputError.single(field, exc.message) from exc


def _arm(rollout: dict[str, Any], user: str | None) -> Arm:
    if rollout["status"] == "promoted":
        return "candidate"
    if user is None:
        return "control"
    percent = rollout["steps"][rollout["step"]]
    return "candidate" if gbhash(f"rollout:{rollout['id']}", user) * 100 < percent else "control"


def _arm_calls(calls: Sequence[LoggedCall], arm: Arm) -> ArmCalls:
    mine = [call for call in calls if call.arm == arm]
    ok = [call for call in mine if call.ok]
    return ArmCalls(calls=len(mine), errors=len(mine) - len(ok),
                    latencies=[call.latency for call in ok if call.latency is not None],
                    costs=[call.cost for call in ok if call.cost is not None])


def _step_done(rollout: dict[str, Any], calls: Sequence[LoggedCall], checks: Sequence[Check], now: datetime) -> bool:
    """The step's minimum time and candidate calls are met and every guardrail passes."""
    started = rollout["step_started_at"]
    in_step = sum(1 for call in calls if call.arm == "candidate" and call.created_at >= started)
    return (now - started >= timedelta(seconds=rollout["min_seconds_per_step"])
            and in_step >= rollout["min_calls_per_step"] and all(check.verdict == "pass" for check in checks))
