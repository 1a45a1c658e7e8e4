"""A real OTLP/HTTP receiver on 127.0.0.1 (random port): what an OpenTelemetry collector does with the exporters'
requests, minus forwarding them.

`POST /v1/traces` and `POST /v1/metrics` take protobuf bodies (gzip or deflate when the exporter compresses),
decoded with opentelemetry-proto into `ExportTraceServiceRequest` / `ExportMetricsServiceRequest`; anything else
is a 404. Tests read what arrived as flat lists of spans and metric data points with plain-dict attributes.

Usage::

    with OtlpReceiver() as receiver:
        app = create_app(settings_with(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint))
        ...
        receiver.wait_for(lambda: receiver.spans())
"""

from __future__ import annotations

import gzip
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.waiting import wait_for
from tests.wire_server import LocalHttpServer

DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {"gzip": gzip.decompress, "deflate": zlib.decompress, "": bytes}


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


@dataclass(frozen=True)
class ReceivedPoint:
    """One histogram data point of a metric."""

    metric: str
    unit: str
    attributes: dict[str, Any]
    count: int
    sum: float


class OtlpReceiver(LocalHttpServer):
    name = "otlp"

    def __init__(self) -> None:
        self.handler = _OtlpHandler
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """The base URL an exporter is given (OTEL_EXPORTER_OTLP_ENDPOINT)."""
        return self.root_url

    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            requests = list(self.traces)
        return [ReceivedSpan(span.name, span.kind, span.trace_id.hex(), span.span_id.hex(), span.parent_span_id.hex(),
                             attributes(span.attributes), attributes(resource_spans.resource.attributes))
                for request in requests for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans for span in scope_spans.spans]

    def points(self, metric: str) -> list[ReceivedPoint]:
        """The histogram points of `metric` across every export received (cumulative: the last one is the total)."""
        with self._lock:
            requests = list(self.metrics)
        return [ReceivedPoint(m.name, m.unit, attributes(point.attributes), point.count, point.sum)
                for request in requests for resource_metrics in request.resource_metrics
                for scope_metrics in resource_metrics.scope_metrics for m in scope_metrics.metrics
                if m.name == metric for point in m.histogram.data_points]

    def wait_for(self, condition: Callable[[], Any], timeout: float = 10.0) -> Any:
        """`condition()` once it is truthy; fails the test after `timeout` seconds."""
        return wait_for(condition, timeout, "what the OTLP receiver was expected to get")

    def accept(self, path: str, body: bytes) -> bytes | None:
        """The protobuf answer to a request on `path`, or None for a path OTLP does not have."""
        if path == "/v1/traces":
            trace_request = ExportTraceServiceRequest.FromString(body)
            with self._lock:
                self.traces.append(trace_request)
            return ExportTraceServiceResponse().SerializeToString()
        if path == "/v1/metrics":
            metrics_request = ExportMetricsServiceRequest.FromString(body)
            with self._lock:
                self.metrics.append(metrics_request)
            return ExportMetricsServiceResponse().SerializeToString()
        return None


class _OtlpHandler(BaseHTTPRequestHandler):
    wire: OtlpReceiver  # set on the per-receiver subclass

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr log
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = DECOMPRESS[self.headers.get("Content-Encoding", "")](raw)
        answer = self.wire.accept(self.path, body)
        if answer is None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


def attributes(pairs: Any) -> dict[str, Any]:
    """OTLP key-values as a plain dict (arrays as tuples)."""
    return {pair.key: _value(pair.value) for pair in pairs if isinstance(pair, KeyValue)}


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    return getattr(value, kind) if kind else None
