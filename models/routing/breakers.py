"""Circuit breakers per deployment: stop calling a provider that keeps failing, then test it with one probe.

A breaker counts retryable provider failures (429, 5xx, timeouts, lost connections) in a window; reaching the
policy's count opens it, and calls are refused without reaching the provider. After the cooldown exactly one
caller, in any thread or process, takes the half-open probe: its success closes the breaker, its failure opens it
again. States live in a `BreakerStore` (database or Redis) so that every worker acts on the same ones.

`admit`, `blocks` and `record(failed=False)` run on every call: while a breaker is closed they only read a
snapshot, and a success writes nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field

from models.errors import CallRefusedError
from models.routing.breaker_store import BreakerState, BreakerStore

log = logging.getLogger(__name__)

# A probe in flight this long (at least) is taken to have died with its process; another caller may take it.
MIN_PROBE_TIMEOUT_S = 60.0
_CLOSED = BreakerState("closed", 0, 0.0)


class BreakerPolicy(BaseModel):
    """When a deployment's breaker opens and how long it stays open (models.yaml may set one per model)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    failures: int = Field(default=5, ge=1, le=10_000)  # retryable failures within window_s that open it
    window_s: float = Field(default=30.0, gt=0, le=86_400)
    cooldown_s: float = Field(default=30.0, gt=0, le=86_400)  # open this long, then one half-open probe

    @property
    def probe_timeout_s(self) -> float:
        return max(self.cooldown_s, MIN_PROBE_TIMEOUT_S)


DEFAULT_POLICY = BreakerPolicy()


class CircuitOpenError(CallRefusedError):
    """The deployment's breaker refuses calls for now; `details.retry_after` says when to try again."""

    code = "circuit_open"
    http_status = 503

    @classmethod
    def refusing(cls, model: str, state: str, retry_after: int) -> CircuitOpenError:
        why = "a probe call is testing it" if state == "half_open" else "its provider keeps failing"
        return cls(f"Model {model} is temporarily unavailable ({why}); retry in {retry_after} s",
                   details={"model": model, "state": state, "retry_after": retry_after})


class CircuitBreakers:
    """The breakers of every deployment, over one shared store; `clock` gives epoch seconds (comparable across
    processes and hosts)."""

    def __init__(self, store: BreakerStore, *, default_policy: BreakerPolicy = DEFAULT_POLICY,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.default_policy = default_policy
        self._clock = clock
        self._policies: dict[str, BreakerPolicy] = {}
        self._policies_lock = threading.Lock()

    def set_policy(self, name: str, policy: BreakerPolicy) -> None:
        with self._policies_lock:  # copy on write: readers never lock
            self._policies = {**self._policies, name: policy}

    def policy(self, name: str) -> BreakerPolicy:
        return self._policies.get(name, self.default_policy)

    def admit(self, name: str) -> None:
        """Raise CircuitOpenError when a call to `name` must not reach its provider now."""
        stored = self._stored(name)
        if stored is None or stored.state == "closed":
            return
        now = self._clock()
        policy = self.policy(name)
        if not _probe_due(stored, policy, now):
            raise _refusal(name, stored, policy, now)
        seen: list[BreakerState | None] = []

        def take_probe(current: BreakerState | None) -> BreakerState | None:
            seen.append(current)
            if current is None or not _probe_due(current, policy, now):
                return None
            return BreakerState("half_open", current.failures, current.window_start, current.opened_at, now)

        if self.store.update(name, take_probe) is not None:
            return
        current = seen[-1]  # another caller took the probe, or the breaker changed meanwhile
        if current is not None and current.state != "closed":
            raise _refusal(name, current, policy, now)

    def blocks(self, name: str) -> bool:
        """Whether `admit` would refuse now, without taking a probe: routing skips such a deployment."""
        stored = self._stored(name)
        if stored is None or stored.state == "closed":
            return False
        return not _probe_due(stored, self.policy(name), self._clock())

    def record(self, name: str, *, failed: bool) -> None:
        """Record a call's outcome; `failed` means a retryable provider failure."""
        if failed:
            self.store.update(name, _failure(self.policy(name), self._clock()))
            return
        stored = self._stored(name)
        if stored is not None and stored.state != "closed":
            self.store.update(name, _success(self._clock()))

    def reset(self, name: str) -> None:
        """Close the breaker now, whatever its state (an operator who knows the provider is back)."""
        self.store.update(name, _reset(self._clock()))

    def _stored(self, name: str) -> BreakerState | None:
        """The stored state; an unreachable store (Redis down) fails open: calls go on, as without breakers."""
        try:
            return self.store.snapshot().get(name)
        except Exception:
            log.warning("Circuit breaker states unreadable; calling %s as if its breaker were closed", name,
                        exc_info=True)
            return None

    def state(self, name: str) -> BreakerState:
        return self.store.snapshot().get(name, _CLOSED)

    def states(self) -> dict[str, BreakerState]:
        return dict(self.store.snapshot())


def _probe_due(stored: BreakerState, policy: BreakerPolicy, now: float) -> bool:
    """Whether a caller may take the half-open probe now: cooled down, or the probe in flight has died."""
    if stored.state == "open":
        return now >= (stored.opened_at or 0.0) + policy.cooldown_s
    if stored.state == "half_open":
        return now >= (stored.probe_at or 0.0) + policy.probe_timeout_s
    return False


def _refusal(name: str, stored: BreakerState, policy: BreakerPolicy, now: float) -> CircuitOpenError:
    """Open: retry when the cooldown ends. Half-open: the probe's outcome decides at any moment, so soon."""
    wait = (stored.opened_at or now) + policy.cooldown_s - now if stored.state == "open" else 1.0
    return CircuitOpenError.refusing(name, stored.state, max(1, math.ceil(wait)))


def _failure(policy: BreakerPolicy, now: float) -> Callable[[BreakerState | None], BreakerState | None]:
    def change(current: BreakerState | None) -> BreakerState | None:
        current = current or _CLOSED
        if current.state == "half_open":  # the probe failed: a fresh cooldown
            return BreakerState("open", current.failures, current.window_start, now)
        if current.state == "open":  # a call admitted before it opened: the cooldown stands
            return None
        if now - current.window_start >= policy.window_s:
            current = BreakerState("closed", 0, now)
        failures = current.failures + 1
        if failures >= policy.failures:
            return BreakerState("open", failures, current.window_start, now)
        return BreakerState("closed", failures, current.window_start)

    return change


def _success(now: float) -> Callable[[BreakerState | None], BreakerState | None]:
    def change(current: BreakerState | None) -> BreakerState | None:
        if current is None or current.state == "closed":  # a closed breaker's count runs out with its window
            return None
        return BreakerState("closed", 0, now)

    return change


def _reset(now: float) -> Callable[[BreakerState | None], BreakerState | None]:
    def change(current: BreakerState | None) -> BreakerState | None:
        return None if current is None else BreakerState("closed", 0, now)

    return change
