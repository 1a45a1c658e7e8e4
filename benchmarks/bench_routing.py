"""Overhead of routing through a group over calling its model directly, with 2 and with 50 deployments.

Every deployment is the same in-process instant model, so the difference between a call to the group and a
call to the model is the routing: the strategy's pick, the breaker and limit checks, the attempt's context and
the result's copy. The direct calls take the deployments in turn, as the group spreads its calls over them, so
that both write their rows to as many models' rollups. Both run the whole managed call path (the request-log
write included), interleaved in rounds so machine noise hits them alike; the figure is the median per call.
Target: <= 50 us per call.
Usage: python -m benchmarks.bench_routing [--calls 5000] [--strategy weighted]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from core.settings import Settings
from models.base_model import BaseModel
from models.model_registry import ModelRegistry
from models.routing.group_config import DeploymentEntry, GroupEntry, register_groups
from models.routing.strategies import STRATEGIES
from storage.database import get_engine
from tests.fakes import FakeModel

ROUNDS = 7
SIZES = (2, 50)
TARGET_US = 50.0


def _per_call(models: list[BaseModel], calls: int) -> float:
    start = time.perf_counter()
    for index in range(calls):
        models[index % len(models)].generate("hello world")
    return (time.perf_counter() - start) / calls


def _registry(database_url: str, size: int, strategy: str) -> tuple[list[BaseModel], list[BaseModel]]:
    """The deployments on their own, and their group (`size` deployments of the same instant model)."""
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": database_url})
    registry = ModelRegistry(get_engine(database_url), settings=settings, register_defaults=False)
    for index in range(size):
        registry.register_model(FakeModel(f"instant-{index}"))
    register_groups(registry, [GroupEntry(name="group", strategy=strategy,  # type: ignore[arg-type]
                                          deployments=[DeploymentEntry(model=f"instant-{i}") for i in range(size)])])
    return [registry.require_model(f"instant-{i}") for i in range(size)], [registry.require_model("group")]


def run(calls: int, strategy: str, tmp: Path) -> dict[int, dict[str, float]]:
    figures = {}
    for size in SIZES:
        targets = dict(zip(("direct", "group"), _registry(f"sqlite:///{tmp / f'routing-{size}.db'}", size, strategy),
                           strict=True))
        for models in targets.values():  # warm-up
            _per_call(models, calls // ROUNDS)
        samples: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(ROUNDS):
            for name, models in targets.items():
                samples[name].append(_per_call(models, calls // ROUNDS))
        direct_us = statistics.median(samples["direct"]) * 1e6
        group_us = statistics.median(samples["group"]) * 1e6
        overheads = [(g - d) * 1e6 for g, d in zip(samples["group"], samples["direct"], strict=True)]
        figures[size] = {"direct_us": direct_us, "group_us": group_us, "overhead_us": statistics.median(overheads),
                         "ratio": group_us / direct_us}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5_000, help="per measurement, split over the rounds")
    parser.add_argument("--strategy", choices=STRATEGIES, default="weighted")
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = run(args.calls, args.strategy, Path(tmp))
    print(f"routing overhead ({args.strategy}, SQLite, median of {ROUNDS} interleaved rounds of "
          f"{args.calls // ROUNDS} calls)")
    for size, figure in figures.items():
        met = "met" if figure["overhead_us"] <= TARGET_US else "MISSED"
        print(f"  {size:>2} deployments: models {figure['direct_us']:7.1f} us/call, group {figure['group_us']:7.1f} "
              f"us/call, overhead {figure['overhead_us']:6.1f} us (target <= {TARGET_US:.0f}: {met}), "
              f"ratio {figure['ratio']:.2f}")


if __name__ == "__main__":
    main()
