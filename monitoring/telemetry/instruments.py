"""One app's tracer and GenAI histograms, on the tracer and meter providers it is given."""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider
from opentelemetry.semconv._incubating.metrics.gen_ai_metrics import (
    GEN_AI_CLIENT_OPERATION_DURATION,
    GEN_AI_CLIENT_TOKEN_USAGE,
)
from opentelemetry.trace import TracerProvider

INSTRUMENTATION_SCOPE = "ai_model_manager"
# The bucket boundaries the GenAI semantic conventions advise for each histogram.
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


class Telemetry:
    """What the call-path observer and the HTTP server spans record into, and how to flush or stop it.

    Held by the app's services, so each app (and each test) has its own providers and exporters.
    """

    def __init__(self, tracer_provider: TracerProvider, meter_provider: MeterProvider, *,
                 capture_content: bool = False) -> None:
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.capture_content = capture_content
        self.tracer = tracer_provider.get_tracer(INSTRUMENTATION_SCOPE)
        meter = meter_provider.get_meter(INSTRUMENTATION_SCOPE)
        self.token_usage = meter.create_histogram(
            GEN_AI_CLIENT_TOKEN_USAGE, unit="{token}", description="Billable input and output tokens used",
            explicit_bucket_boundaries_advisory=TOKEN_BUCKETS)
        self.operation_duration = meter.create_histogram(
            GEN_AI_CLIENT_OPERATION_DURATION, unit="s", description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS)

    def force_flush(self, timeout_millis: int = 10_000) -> None:
        """Export what is buffered now (tests, and before a process exits on purpose)."""
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)  # the API's no-op providers have none
            if flush is not None:
                flush(timeout_millis)

    def shutdown(self) -> None:
        """Flush and stop the exporters' threads (the SDK also does this at interpreter exit)."""
        for provider in (self.tracer_provider, self.meter_provider):
            stop = getattr(provider, "shutdown", None)
            if stop is not None:
                stop()
