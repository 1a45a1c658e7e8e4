"""Rollouts: traffic that names a control moves to a candidate step by step, and back at once when a guardrail breaks.

While a rollout runs, a call naming its control goes to the candidate when the caller's GrowthBook hash
(`gbhash("rollout:<id>", user)`) is below the step's percentage. The threshold only grows, so a user on the candidate
stays there at every later step (and after a pause). Callers without a user or key stay on the control. The call
carries the tag `rollout:<id>:candidate` or `rollout:<id>:control`, which is how the guardrails find it in the
request log. What the control and candidate may be (models, model versions, prompt versions) is in
`ab_testing.rollout_targets`.

`advance` (called by a periodic chore in every worker, or explicitly) reads the calls since the rollout started and
applies `ab_testing.guardrails`: a breach rolls back; a step whose minimum calls (on the candidate, during the step)
and minimum seconds are met, and whose every guardrail passes, moves on; after the last (100%) step, promotes. From
the last step with a control arm on, the primary metric must also be proven non-inferior.

Promotion of a model or group routes every call naming the control to the candidate, until the rollout is cancelled;
promotion of a version makes it serve by itself (model version to production, prompt version labelled
`production`), and the rollout stops routing. A paused rollout routes nothing (every call on the control, untagged);
resuming restarts the current step, so its minimum time and calls count from the resume.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from ab_testing.guardrails import ArmCalls, Check, default_margin, evaluate, non_inferiority
from ab_testing.hashing import gbhash
from ab_testing.rollout_spec import Guardrails, RolloutSpec
from ab_testing.rollout_store import MOVES, Arm, LoggedCall, RolloutStore, arm_tag, can_move
from ab_testing.rollout_targets import RolloutTargets, Target
from core.errors import AppError, ConflictError, NotFoundError
from models.prompts.registry import PromptRegistry
from storage.clock import utcnow
from storage.ttl_cache import TtlCache

if TYPE_CHECKING:
    from models.base_model import BaseModel
    from models.model_registry import ModelRegistry

log = logging.getLogger(__name__)

# How long a process routes on its copy of the routing rollouts: another worker's advance shows within this time.
ROUTING_CACHE_SECONDS = 1.0
# Attempts at a pause, resume or cancel that another process's move overtook.
MOVE_ATTEMPTS = 3
RollbackHook = Callable[[dict[str, Any]], None]


class RolloutManager:
    """Creates, routes, advances, pauses, resumes, cancels and describes rollouts; `on_rollback` hears of each
    rollback (e.g. a webhook)."""

    def __init__(self, engine: Engine, registry: ModelRegistry, prompts: PromptRegistry | None = None, *,
                 on_rollback: RollbackHook | None = None) -> None:
        self.store = RolloutStore(engine)
        self.registry = registry
        self.targets = RolloutTargets(registry, prompts or PromptRegistry(engine))
        self.on_rollback = on_rollback
        self._routing: TtlCache[list[dict[str, Any]]] = TtlCache(ROUTING_CACHE_SECONDS)

    def create(self, spec: RolloutSpec, now: datetime | None = None) -> int:
        """Start `spec` at its first step; the control and candidate are stored by their canonical references."""
        control, candidate = self.targets.canonical(spec.control, spec.candidate)
        values = {**spec.model_dump(), "control": control, "candidate": candidate}
        rollout_id = self.store.create(values, now or utcnow())
        if rollout_id is None:
            raise ConflictError(f"A rollout routes {control!r} already (running, paused or promoted): cancel it "
                                "first", details={"control": control})
        self._routing.clear()
        return rollout_id

    def describe(self, rollout_id: int) -> dict[str, Any]:
        """The rollout's status, current step and percentage, schedule and timeline; raises NotFoundError."""
        return _described(self._get(rollout_id))

    def list_rollouts(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Rollouts, newest first, without their timelines."""
        return [_described({**rollout, "timeline": []}) for rollout in self.store.recent(status, limit)]

    def route(self, model: BaseModel, user: str | None) -> tuple[BaseModel, str | None]:
        """The model a call naming `model` runs on, and the tag recording the arm (None when no rollout routes
        it): the control, the candidate model, or the model running the candidate version."""
        rollout = self._routing_of(model.name)
        if rollout is None:
            return model, None
        arm = _arm(rollout, user)
        candidate = Target.parse(rollout["candidate"])
        if arm == "control":
            served = model
        elif candidate.version is None:
            served = self.registry.require_model(candidate.name)
        else:
            served = self.targets.candidate_model(model, candidate.version)
        return served, arm_tag(rollout["id"], arm)

    def route_prompt(self, name: str, user: str | None) -> tuple[int | None, str] | None:
        """For a call rendering prompt `name` by its `production` label: the version to render instead (None:
        the label's own) and the arm's tag; None when no rollout splits the prompt."""
        rollout = self._routing_of(str(Target("prompt", name)))
        if rollout is None:
            return None
        arm = _arm(rollout, user)
        version = Target.parse(rollout["candidate"]).version if arm == "candidate" else None
        return (int(version) if version is not None else None), arm_tag(rollout["id"], arm)

    def advance(self, rollout_id: int, now: datetime | None = None) -> dict[str, Any]:
        """One look: roll back on a breach, move on (or promote) when the step is done and every guardrail passes."""
        rollout = self._get(rollout_id)
        if rollout["status"] == "running":
            self._look(rollout, now or utcnow())
        return self.describe(rollout_id)

    def has_running(self) -> bool:
        """Whether any rollout is running (from the routing copy, so at most ROUTING_CACHE_SECONDS old)."""
        return any(r["status"] == "running" for r in self._routing.get("routing", self.store.routing))

    def advance_running(self) -> None:
        """The periodic chore: one look at every running rollout."""
        for rollout in self.store.routing():
            if rollout["status"] == "running":
                self._look(rollout, utcnow())

    def pause(self, rollout_id: int, now: datetime | None = None) -> dict[str, Any]:
        """Send every call back to the control, keeping the step; 409 unless running."""
        return self._act(rollout_id, "paused", now)

    def resume(self, rollout_id: int, now: datetime | None = None) -> dict[str, Any]:
        """Route again from the paused step, which starts over; 409 unless paused."""
        return self._act(rollout_id, "resumed", now)

    def cancel(self, rollout_id: int, now: datetime | None = None) -> dict[str, Any]:
        """End the rollout with every call on the control: a running or paused one, or a promoted model or group
        candidate (undoing its promotion); 409 otherwise."""
        return self._act(rollout_id, "cancelled", now)

    def _act(self, rollout_id: int, event: str, now: datetime | None) -> dict[str, Any]:
        for _ in range(MOVE_ATTEMPTS):
            rollout = self._get(rollout_id)
            if not can_move(rollout, event):
                raise _illegal(rollout, event)
            if self.store.move(rollout, event, now or utcnow(), {}):
                self._routing.clear()
                return self.describe(rollout_id)
        raise ConflictError(f"Rollout {rollout_id} kept moving meanwhile; try again", code="rollout_busy",
                            details={"rollout_id": rollout_id})

    def _look(self, rollout: dict[str, Any], now: datetime) -> None:
        calls = self.store.calls(rollout, now)
        candidate, control = _arm_calls(calls, "candidate"), _arm_calls(calls, "control")
        guardrails = Guardrails.model_validate(rollout["guardrails"])
        planned_n = 2 * rollout["min_calls_per_step"]
        checks = evaluate(candidate, control, guardrails, planned_n)
        if rollout["step"] >= len(rollout["steps"]) - 2:  # the last step with a control arm, and the promotion
            metric = rollout["primary_metric"]
            margin = rollout["non_inferiority_margin"]
            checks.append(non_inferiority(candidate, control, metric,
                                          default_margin(metric, guardrails) if margin is None else margin,
                                          guardrails.alpha, planned_n))
        details = {"checks": [check.to_dict() for check in checks]}
        if any(check.verdict == "breach" for check in checks):
            self._rollback(rollout, now, details)
        elif _step_done(rollout, calls, checks, now):
            if rollout["step"] == len(rollout["steps"]) - 1:
                self._promote(rollout, now, details)
            elif self.store.move(rollout, "step", now, details):
                self._routing.clear()

    def _rollback(self, rollout: dict[str, Any], now: datetime, details: dict[str, Any]) -> None:
        if not self.store.move(rollout, "rolled_back", now, details):
            return  # another process moved it first
        self._routing.clear()
        breached = [check["guardrail"] for check in details["checks"] if check["verdict"] == "breach"]
        log.warning("Rollout %s (%s -> %s) rolled back: %s breached", rollout["id"], rollout["control"],
                    rollout["candidate"], ", ".join(breached))
        if self.on_rollback is not None:
            self.on_rollback({"event": "rollout_rolled_back", "rollout_id": rollout["id"], "name": rollout["name"],
                              "control": rollout["control"], "candidate": rollout["candidate"],
                              "breached": breached, "checks": details["checks"], "at": now.isoformat() + "Z"})

    def _promote(self, rollout: dict[str, Any], now: datetime, details: dict[str, Any]) -> None:
        """Record the promotion (one process wins it), then make a candidate version serve by itself; if that
        fails (say the version was archived meanwhile), the timeline says so and the control keeps serving."""
        candidate = Target.parse(rollout["candidate"])
        by_itself = candidate.version is not None
        if not self.store.move(rollout, "promoted", now, details, stop_routing=by_itself):
            return
        self._routing.clear()
        try:
            self.targets.promote(candidate)
        except AppError as exc:
            log.error("Rollout %s could not promote %s: %s", rollout["id"], candidate, exc.message)
            promoted = {**rollout, "status": MOVES["promoted"].status, "routed_control": None}
            self.store.move(promoted, "promotion_failed", now, exc.to_dict())

    def _get(self, rollout_id: int) -> dict[str, Any]:
        rollout = self.store.get(rollout_id)
        if rollout is None:
            raise NotFoundError(f"No rollout with id {rollout_id}", details={"rollout_id": rollout_id})
        return rollout

    def _routing_of(self, control: str) -> dict[str, Any] | None:
        """The rollout splitting calls to `control` now: running, or promoted with a model or group candidate."""
        routing = self._routing.get("routing", self.store.routing)
        return next((r for r in routing if r["control"] == control and r["status"] != "paused"), None)


def _described(rollout: dict[str, Any]) -> dict[str, Any]:
    """A rollout as the API shows it: `routing` says whether it still routes its control's calls."""
    rollout["routing"] = rollout.pop("routed_control") is not None
    status = rollout["status"]
    rollout["percent"] = rollout["steps"][rollout["step"]] if status == "running" else (
        100 if status == "promoted" else 0)
    for row in (rollout, *rollout["timeline"]):
        for key in ("created_at", "step_started_at", "ended_at", "at"):
            if row.get(key) is not None:
                row[key] = row[key].isoformat() + "Z"
    return rollout


def _illegal(rollout: dict[str, Any], event: str) -> ConflictError:
    """409 `illegal_rollout_move`, saying what the rollout's status allows."""
    allowed = [name for name in ("paused", "resumed", "cancelled") if can_move(rollout, name)]
    status = rollout["status"]
    reason = f"Rollout {rollout['id']} is {status}; it cannot be {event}"
    if status == "promoted" and event == "cancelled":
        reason += (": its candidate version serves by itself now (roll the model version back, or move the "
                   "prompt's production label)")
    return ConflictError(reason, code="illegal_rollout_move",
                         details={"rollout_id": rollout["id"], "status": status, "allowed": allowed})


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
    """The step's minimum time and candidate calls are met and every check passes."""
    started = rollout["step_started_at"]
    in_step = sum(1 for call in calls if call.arm == "candidate" and call.created_at >= started)
    return (now - started >= timedelta(seconds=rollout["min_seconds_per_step"])
            and in_step >= rollout["min_calls_per_step"] and all(check.verdict == "pass" for check in checks))
