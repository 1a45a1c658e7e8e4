"""A SERVER span per HTTP request that continues the caller's W3C trace context (`traceparent` in) and names
itself in the response (`traceparent` out), so a client can find the trace of each of its requests.

Registered only when telemetry is on. The span is current from the first `before_request` hook to the response,
so the GenAI spans of the calls a view makes are its children. It ends at teardown, or, for a streamed answer,
when the server closes the response: after its last byte, or when the client went away (Flask tears a streamed
request down twice, as the view returns and as the stream ends, so teardown cannot tell). Only the method, route,
path, host, status and user agent are recorded: never headers or the query string, where credentials travel.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask, Response, g, request
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
    HTTP_ROUTE,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_PATH, URL_SCHEME
from opentelemetry.semconv.attributes.user_agent_attributes import USER_AGENT_ORIGINAL
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from monitoring.telemetry import Telemetry

PROPAGATOR = TraceContextTextMapPropagator()
_SPAN = "otel_server_span"
_TOKEN = "otel_context_token"
_ENDS_ON_CLOSE = "otel_span_ends_on_close"


def register_http_tracing(app: Flask, telemetry: Telemetry) -> None:
    """Register before any other request hook, so a request refused early (auth, rate limit) is traced too."""
    tracer = telemetry.tracer

    @app.before_request
    def _start_server_span() -> None:
        parent = PROPAGATOR.extract(request.headers)
        span = tracer.start_span(_span_name(), context=parent, kind=SpanKind.SERVER, attributes=_attributes())
        setattr(g, _SPAN, span)
        setattr(g, _TOKEN, otel_context.attach(trace.set_span_in_context(span, parent)))

    @app.after_request
    def _answer_with_traceparent(response: Response) -> Response:
        span = g.get(_SPAN)
        if span is not None:
            span.set_attribute(HTTP_RESPONSE_STATUS_CODE, response.status_code)
            if response.status_code >= 500:
                span.set_attribute(ERROR_TYPE, str(response.status_code))
                span.set_status(Status(StatusCode.ERROR))
            PROPAGATOR.inject(response.headers, context=trace.set_span_in_context(span))
            if response.is_streamed:
                response.call_on_close(span.end)
                setattr(g, _ENDS_ON_CLOSE, True)
        _detach()
        return response

    @app.teardown_request
    def _end_server_span(error: BaseException | None) -> None:
        _detach()
        span = g.get(_SPAN)
        if span is None or not span.is_recording():
            return
        if error is not None:
            span.set_attribute(ERROR_TYPE, type(error).__qualname__)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        if not g.get(_ENDS_ON_CLOSE):
            span.end()


def _detach() -> None:
    """Leave the server span's context (once: after the response is built, or at teardown if none was)."""
    token = g.pop(_TOKEN, None)
    if token is not None:
        otel_context.detach(token)


def _span_name() -> str:
    route = request.url_rule.rule if request.url_rule is not None else None
    return f"{request.method} {route}" if route else request.method


def _attributes() -> dict[str, str | int]:
    attributes: dict[str, str | int] = {HTTP_REQUEST_METHOD: request.method, URL_PATH: request.path,
                                        URL_SCHEME: request.scheme}
    if request.url_rule is not None:
        attributes[HTTP_ROUTE] = request.url_rule.rule
    host = urlsplit(f"//{request.host}")
    if host.hostname:
        attributes[SERVER_ADDRESS] = host.hostname
    try:
        port = host.port
    except ValueError:  # a malformed Host header: no port to record
        port = None
    if port is not None:
        attributes[SERVER_PORT] = port
    if request.user_agent.string:
        attributes[USER_AGENT_ORIGINAL] = request.user_agent.string
    return attributes
