"""Overhead of the managed call path (guards, request-log write, observers) over a direct model call.

Runs the same in-process instant model both ways, interleaved in rounds so machine noise hits both
alike, and prints microseconds per call and the ratio. Target: < 500 us of overhead per call on SQLite.
Usage: python -m benchmarks.bench_call_overhead [--calls 10000] [--database-url URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from core.settings import Settings
from models.messages import GenerationRequest
from models.model_registry import ModelRegistry
from models.results import Usage
from storage.database import get_engine
from tests.fakes import FakeModel

ROUNDS = 5


def _direct(model: FakeModel, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        usage = Usage()
        "".join(model.execute(GenerationRequest.build("hello world"), usage))
    return time.perf_counter() - start


def _managed(model: FakeModel, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        model.generate("hello world")
    return time.perf_counter() - start


def run(calls: int, database_url: str) -> dict[str, float]:
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": database_url})
    registry = ModelRegistry(get_engine(database_url), settings=settings, register_defaults=False)
    model = FakeModel("instant")
    registry.register_model(model)
    per_round = calls // ROUNDS
    direct, managed = [], []
    for _ in range(ROUNDS):
        direct.append(_direct(model, per_round) / per_round)
        managed.append(_managed(model, per_round) / per_round)
        model.calls.clear()
    direct_us = statistics.median(direct) * 1e6
    managed_us = statistics.median(managed) * 1e6
    return {"calls": per_round * ROUNDS, "direct_us": direct_us, "managed_us": managed_us,
            "overhead_us": managed_us - direct_us, "ratio": managed_us / direct_us}


def run_from_command_line(description: str, run: Callable[[int, str], dict[str, float]]) -> tuple[
        dict[str, float], str]:
    """`run(calls, database_url)` with `--calls` and `--database-url` (default: a fresh SQLite file) from the
    command line; its figures and the URL, for the call-path benchmarks."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        return run(args.calls, url), url


def main() -> None:
    figures, url = run_from_command_line(__doc__.splitlines()[0], run)
    print(f"managed call path overhead ({figures['calls']} calls, median of {ROUNDS} interleaved rounds, "
          f"{url.split(':')[0]})")
    print(f"  direct model call : {figures['direct_us']:9.1f} us/call")
    print(f"  managed call      : {figures['managed_us']:9.1f} us/call")
    print(f"  overhead          : {figures['overhead_us']:9.1f} us/call  (target < 500)")
    print(f"  ratio             : {figures['ratio']:9.1f}x")


if __name__ == "__main__":
    main()
