"""OpenTelemetry for GenAI calls: a span per managed call and the `gen_ai.client.*` histograms.

`Telemetry` holds one app's tracer and instruments on providers of its own (never the process-global ones, which
can be set only once); `telemetry_for(settings)` builds it over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set,
else returns None and nothing is hooked. `GenAICallTelemetry` is the call-path observer that feeds it.
"""

from monitoring.telemetry.call_spans import GenAICallTelemetry
from monitoring.telemetry.instruments import Telemetry
from monitoring.telemetry.otlp import telemetry_for

__all__ = ["GenAICallTelemetry", "Telemetry", "telemetry_for"]
