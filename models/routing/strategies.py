"""How a group orders its deployments for one call: the first that is admissible is tried first.

Every strategy returns the whole order lazily, so a failover walks on without recomputing, and the common case
(the first pick answers) pays only for the first pick.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from models.base_model import BaseModel
from models.results import GenerationResult

Strategy = Literal["weighted", "round_robin", "least_busy", "least_latency", "cost", "priority"]
STRATEGIES: tuple[Strategy, ...] = ("weighted", "round_robin", "least_busy", "least_latency", "cost", "priority")
# Weight of the newest observation in a deployment's moving average of latency (or time to first token).
EWMA_ALPHA = 0.3
# An average older than this is forgotten, so that a deployment once slow (a cold start) is measured again.
LATENCY_MEMORY_S = 30.0


@dataclass(frozen=True)
class Deployment:
    """A model serving a group, with its share of traffic (`weighted`), its rank (`priority`: lower first), its
    per-minute limits of calls and tokens in this group (None: none), and labels for operators (`tags`)."""

    model: BaseModel
    weight: float = 1.0
    priority: int = 0
    rpm: int | None = None
    tpm: int | None = None
    tags: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.model.name


class DeploymentStats:
    """What this process has seen of each deployment: calls in flight and moving averages of latency and TTFT.

    Per process on purpose: they steer the next pick, and a pick is made here.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._in_flight: dict[str, int] = {}
        self._latency: dict[str, tuple[float, float]] = {}  # name -> (average, monotonic time of the last)
        self._ttft: dict[str, tuple[float, float]] = {}

    def started(self, name: str) -> None:
        """A call to `name` is in flight (until `ended`)."""
        with self._lock:
            self._in_flight[name] = self._in_flight.get(name, 0) + 1

    def ended(self, name: str) -> None:
        with self._lock:
            self._in_flight[name] -= 1

    def busy(self, name: str) -> int:
        return self._in_flight.get(name, 0)

    def observe(self, name: str, result: GenerationResult) -> None:
        """Fold an answered call into the averages: its latency, and for a stream its time to first token."""
        with self._lock:
            _fold(self._latency, name, result.latency)
            if result.ttft is not None:
                _fold(self._ttft, name, result.ttft)

    def latency(self, name: str, *, stream: bool) -> float | None:
        """The moving average to rank by (TTFT for a stream, once one was seen); None before any answer, or when
        the last one is older than `LATENCY_MEMORY_S`."""
        entry = (self._ttft.get(name) if stream else None) or self._latency.get(name)
        if entry is None or time.monotonic() - entry[1] > LATENCY_MEMORY_S:
            return None
        return entry[0]


def _fold(averages: dict[str, tuple[float, float]], name: str, value: float) -> None:
    now = time.monotonic()
    previous = averages.get(name)
    if previous is not None and now - previous[1] <= LATENCY_MEMORY_S:
        value = EWMA_ALPHA * value + (1 - EWMA_ALPHA) * previous[0]
    averages[name] = (value, now)


class Orderer:
    """One group's strategy over its deployments; `order` is safe to call from many threads."""

    def __init__(self, strategy: Strategy, deployments: Sequence[Deployment], stats: DeploymentStats,
                 rng: random.Random | None = None) -> None:
        self.strategy = strategy
        self.deployments = tuple(deployments)
        self.stats = stats
        self._rng = rng or random.Random()
        self._turn = itertools.count()
        self._cumulative = list(itertools.accumulate(d.weight for d in self.deployments))
        self._by_priority = tuple(sorted(self.deployments, key=lambda d: d.priority))  # stable: file order breaks ties

    def order(self, *, input_tokens: int = 0, output_tokens: int = 0, stream: bool = False,
              cheapest_first: bool = False) -> Iterator[Deployment]:
        """The deployments, best first, for a call of about these tokens (`cost` prices them; `least_latency`
        ranks a stream by time to first token). `cheapest_first` orders by price whatever the strategy."""
        if cheapest_first or self.strategy == "cost":
            return iter(sorted(self.deployments, key=lambda d: (_price(d.model, input_tokens, output_tokens),
                                                                 d.priority)))
        if self.strategy == "weighted":
            return self._weighted()
        if self.strategy == "round_robin":
            start = next(self._turn) % len(self.deployments)
            return iter(self.deployments[start:] + self.deployments[:start])
        if self.strategy == "priority":
            return iter(self._by_priority)
        return iter(sorted(self.deployments, key=self._rank_key(stream)))

    def _weighted(self) -> Iterator[Deployment]:
        """A pick in proportion to weight; on failover, the rest in a weighted random order (Efraimidis–Spirakis)."""
        first = bisect(self._cumulative, self._rng.random() * self._cumulative[-1])
        first = min(first, len(self.deployments) - 1)
        yield self.deployments[first]
        rest = [d for index, d in enumerate(self.deployments) if index != first]
        yield from sorted(rest, key=lambda d: self._rng.random() ** (1 / d.weight), reverse=True)

    def _rank_key(self, stream: bool) -> Callable[[Deployment], tuple[float, float]]:
        """Lower is better; a random tie-breaker spreads equal deployments."""
        if self.strategy == "least_busy":
            return lambda d: (self.stats.busy(d.name), self._rng.random())
        # least_latency: a deployment not yet measured ranks first, so that it gets measured.
        return lambda d: (self.stats.latency(d.name, stream=stream) or 0.0, self._rng.random())


def _price(model: BaseModel, input_tokens: int, output_tokens: int) -> float:
    """The call's price on `model`; a model with no known price ranks after every priced one."""
    if model.pricing is None:
        return float("inf")
    return model.pricing.cost(input_tokens, output_tokens)
