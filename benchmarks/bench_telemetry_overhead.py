"""What OpenTelemetry costs a managed call: telemetry off (no hook at all) vs on (a span and the two GenAI
histograms per call, spans batched to an in-memory exporter as production batches them to OTLP).

The same in-process instant model through the same call path both ways, interleaved in rounds so machine noise
hits both alike; prints microseconds per call, the difference and the ratio.
Usage: python -m benchmarks.bench_telemetry_overhead [--calls 10000] [--database-url URL]
"""

from __future__ import annotations

import statistics
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks.bench_call_overhead import run_from_command_line
from core.settings import Settings
from models.model_registry import ModelRegistry
from monitoring.telemetry import GenAICallTelemetry, Telemetry
from storage.database import get_engine
from tests.fakes import FakeModel

ROUNDS = 5


def _calls(model: FakeModel, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        model.generate("hello world", temperature=0.2, max_tokens=16)
    return time.perf_counter() - start


def _in_memory_telemetry() -> tuple[Telemetry, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter))
    return Telemetry(tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()])), exporter


def run(calls: int, database_url: str) -> dict[str, float]:
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": database_url})
    engine = get_engine(database_url)
    telemetry, exporter = _in_memory_telemetry()
    off, on = FakeModel("untraced"), FakeModel("traced")
    ModelRegistry(engine, settings=settings, register_defaults=False).register_model(off)
    ModelRegistry(engine, settings=settings, register_defaults=False,
                  hooks=[GenAICallTelemetry(telemetry)]).register_model(on)
    per_round = calls // ROUNDS
    times: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(ROUNDS):
        times["off"].append(_calls(off, per_round) / per_round)
        times["on"].append(_calls(on, per_round) / per_round)
        telemetry.force_flush()
        exported = len(exporter.get_finished_spans())
        assert exported == per_round, f"{exported} spans exported for {per_round} traced calls"
        exporter.clear()
        off.calls.clear()
        on.calls.clear()
    telemetry.shutdown()
    off_us, on_us = (statistics.median(times[mode]) * 1e6 for mode in ("off", "on"))
    return {"calls": per_round * ROUNDS, "off_us": off_us, "on_us": on_us, "overhead_us": on_us - off_us,
            "ratio": on_us / off_us}


def main() -> None:
    figures, url = run_from_command_line(__doc__.splitlines()[0], run)
    print(f"telemetry overhead per managed call ({figures['calls']} calls each way, median of {ROUNDS} "
          f"interleaved rounds, {url.split(':')[0]})")
    print(f"  telemetry off : {figures['off_us']:9.1f} us/call")
    print(f"  telemetry on  : {figures['on_us']:9.1f} us/call")
    print(f"  overhead      : {figures['overhead_us']:9.1f} us/call")
    print(f"  ratio on/off  : {figures['ratio']:9.2f}x")


if __name__ == "__main__":
    main()
