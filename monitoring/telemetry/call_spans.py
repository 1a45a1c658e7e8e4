"""The call-path observer: one span per managed call and the two `gen_ai.client.*` histograms.

A span per call is a span per provider attempt: each attempt a group makes (a fallback, or a retry on another
deployment) is a call of its own, with its own request-log row. Retries a provider's SDK makes inside one call
are one operation and one span. The span is built when the call has been recorded (so a stream's span ends when
the stream does: finished, failed, or abandoned by the client), spanning the call's recorded latency; its parent
is the context current when the call passed its guards (the HTTP request's server span, for API calls).

A cache hit asks no provider: its span is INTERNAL and it adds nothing to either histogram, so
`gen_ai.client.token.usage` counts billable tokens only (the request log keeps a hit's saved tokens apart).
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import (
    GEN_AI_OPERATION_NAME,
    GEN_AI_REQUEST_MODEL,
    GEN_AI_RESPONSE_MODEL,
    GEN_AI_TOKEN_TYPE,
    GenAiTokenTypeValues,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, Status, StatusCode

from models.call_path import CACHE_HIT, Call
from models.messages import GenerationRequest
from models.results import GenerationResult
from monitoring.telemetry import genai_attributes
from monitoring.telemetry.instruments import Telemetry
from monitoring.telemetry.message_content import content_attributes

# Call.extras: the trace context a call started in.
TRACE_PARENT = "trace_parent"
INPUT = GenAiTokenTypeValues.INPUT.value
OUTPUT = GenAiTokenTypeValues.OUTPUT.value


class GenAICallTelemetry:
    """A `CallHook` that never refuses a call: it only remembers where the call started, then reports it."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def before_call(self, call: Call[Any]) -> None:
        call.extras[TRACE_PARENT] = otel_context.get_current()

    def after_call(self, call: Call[Any], result: GenerationResult) -> None:
        ended = time.time_ns()
        identity = genai_attributes.identity(call)
        self._span(call, result, identity, started=ended - int(result.latency * 1e9), ended=ended)
        if CACHE_HIT not in call.extras:
            self._measure(call, result, identity)

    def _span(self, call: Call[Any], result: GenerationResult, identity: dict[str, Any], *,
              started: int, ended: int) -> None:
        attributes = {**identity, **genai_attributes.request_attributes(call),
                      **genai_attributes.response_attributes(call, result)}
        if self.telemetry.capture_content and isinstance(call.request, GenerationRequest):
            attributes.update(content_attributes(call.request, result))
        parent = call.extras.get(TRACE_PARENT)  # absent: refused before this hook, still in the caller's context
        name = f"{identity[GEN_AI_OPERATION_NAME]} {identity[GEN_AI_REQUEST_MODEL]}"
        kind = SpanKind.INTERNAL if CACHE_HIT in call.extras else SpanKind.CLIENT
        span = self.telemetry.tracer.start_span(name, context=parent, kind=kind, attributes=attributes,
                                                start_time=started)
        if not result.success:
            span.set_status(Status(StatusCode.ERROR, result.error_message))
        span.end(end_time=ended)

    def _measure(self, call: Call[Any], result: GenerationResult, identity: dict[str, Any]) -> None:
        attributes = dict(identity)
        if call.usage.response_model:
            attributes[GEN_AI_RESPONSE_MODEL] = call.usage.response_model
        for token_type, tokens in ((INPUT, result.input_tokens), (OUTPUT, result.output_tokens)):
            if tokens is not None:
                self.telemetry.token_usage.record(tokens, {**attributes, GEN_AI_TOKEN_TYPE: token_type})
        if not result.success and result.error_type:
            attributes[ERROR_TYPE] = result.error_type
        self.telemetry.operation_duration.record(result.latency, attributes)
