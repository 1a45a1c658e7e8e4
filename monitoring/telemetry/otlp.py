"""Telemetry exported over OTLP/HTTP (protobuf) when OTEL_EXPORTER_OTLP_ENDPOINT is set; nothing otherwise.

The endpoint comes from the settings, so each app can point elsewhere (tests do); the SDK still reads the
other standard variables itself (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, _COMPRESSION, _CERTIFICATE,
OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER, OTEL_BSP_*, OTEL_METRIC_EXPORT_INTERVAL).
"""

from __future__ import annotations

from core.settings import Settings
from monitoring.telemetry.instruments import Telemetry

TRACES_PATH = "/v1/traces"
METRICS_PATH = "/v1/metrics"


def telemetry_for(settings: Settings) -> Telemetry | None:
    """Spans batched and metrics pushed periodically to the OTLP endpoint; None (no hook at all) without one.

    The SDK is imported here, not at module import, so a process without an endpoint never loads it.
    """
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    base = endpoint.rstrip("/")
    resource = Resource.create({SERVICE_NAME: settings.otel_service_name})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=base + TRACES_PATH)))
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=base + METRICS_PATH))
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    return Telemetry(tracer_provider, meter_provider, capture_content=settings.otel_capture_message_content)
