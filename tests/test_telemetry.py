"""OpenTelemetry: a SERVER span per HTTP request, a GenAI span per managed call, the `gen_ai.client.*` metrics.

In-memory exporters for what is recorded; a real OTLP/HTTP receiver for what is exported; the real `openai` SDK
against the chat-completions wire server for what a provider reports about itself.
"""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from api.app import create_app
from api.services import services
from core.settings import Settings
from models.errors import ProviderUnavailableError
from models.openai_compatible import OpenAICompatibleModel
from models.pricing import ModelPricing
from monitoring.telemetry import GenAICallTelemetry, Telemetry, telemetry_for
from tests.fakes import FakeModel
from tests.openai_wire_server import OpenAIWireServer, WireReply
from tests.otlp_receiver import OtlpReceiver

CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"
TOKEN_USAGE = "gen_ai.client.token.usage"
DURATION = "gen_ai.client.operation.duration"


class Traced:
    """An app on the fake model whose telemetry records into memory."""

    def __init__(self, settings: Settings, *, capture_content: bool = False) -> None:
        self.exporter = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.telemetry = Telemetry(tracer_provider, MeterProvider(metric_readers=[self.reader]),
                                   capture_content=capture_content)
        self.app = create_app(settings, {"TESTING": True}, telemetry=self.telemetry)
        self.model = FakeModel()
        services(self.app).registry.register_model(self.model, aliases=("fake",))
        self.client = self.app.test_client()

    def spans(self, kind: SpanKind | None = None) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if kind is None or span.kind == kind]

    def only(self, kind: SpanKind) -> ReadableSpan:
        spans = self.spans(kind)
        assert len(spans) == 1, [span.name for span in spans]
        return spans[0]

    def points(self, metric: str) -> list[tuple[dict, float, int]]:
        """(attributes, sum, count) of each histogram point of `metric`."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [(dict(point.attributes or {}), point.sum, point.count)
                for resource in data.resource_metrics for scope in resource.scope_metrics
                for found in scope.metrics if found.name == metric for point in found.data.data_points
                if isinstance(point, HistogramDataPoint)]

    def tokens(self) -> dict[str, float]:
        """Token usage recorded so far by `gen_ai.token.type`."""
        return {attributes["gen_ai.token.type"]: total for attributes, total, _ in self.points(TOKEN_USAGE)}


def _settings(sqlite_url: str, **env: str) -> Settings:
    return Settings.from_env(environ={}, env_file=None,
                             overrides={"DATABASE_URL": sqlite_url, "DEFAULT_MODEL": "fake-model", **env})


@pytest.fixture
def traced(settings) -> Traced:
    return Traced(settings)


def _generate(traced: Traced, **body):
    response = traced.client.post("/api/generate", json={"model": "fake", "prompt": "tell me a story", **body})
    return response, response.get_json()


# --- spans -----------------------------------------------------------------------------------------------------

def test_a_generate_call_is_a_client_span_under_the_requests_server_span(traced):
    response, body = _generate(traced, temperature=0.5, max_tokens=50, top_p=0.9, stop=["END"], seed=7)
    assert response.status_code == 200
    server, client = traced.only(SpanKind.SERVER), traced.only(SpanKind.CLIENT)
    assert server.name == "POST /api/generate"
    assert server.attributes["http.route"] == "/api/generate"
    assert server.attributes["http.response.status_code"] == 200
    assert client.name == "chat fake-model"
    assert client.parent is not None and client.parent.span_id == server.context.span_id
    assert client.context.trace_id == server.context.trace_id
    assert server.start_time <= client.start_time <= client.end_time <= server.end_time
    attributes = dict(client.attributes)
    assert {key: attributes[key] for key in (
        "gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.request.temperature",
        "gen_ai.request.max_tokens", "gen_ai.request.top_p", "gen_ai.request.stop_sequences",
        "gen_ai.request.seed", "gen_ai.response.finish_reasons", "gen_ai.usage.input_tokens",
        "gen_ai.usage.output_tokens", "ai_model_manager.request_id")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "fake", "gen_ai.request.model": "fake-model",
        "gen_ai.request.temperature": 0.5, "gen_ai.request.max_tokens": 50, "gen_ai.request.top_p": 0.9,
        "gen_ai.request.stop_sequences": ("END",), "gen_ai.request.seed": 7,
        "gen_ai.response.finish_reasons": ("stop",), "gen_ai.usage.input_tokens": body["input_tokens"],
        "gen_ai.usage.output_tokens": body["output_tokens"], "ai_model_manager.request_id": body["request_id"]}
    assert "error.type" not in attributes
    assert client.status.status_code == StatusCode.UNSET
    assert client.end_time - client.start_time == pytest.approx(body["latency"] * 1e9, abs=1e3)


def test_token_usage_and_duration_metrics_per_call(traced):
    _, first = _generate(traced)
    _, second = _generate(traced, prompt="a much longer prompt than the first one")
    assert traced.tokens() == {"input": first["input_tokens"] + second["input_tokens"],
                               "output": first["output_tokens"] + second["output_tokens"]}
    [(attributes, total, count)] = traced.points(DURATION)
    assert count == 2 and total == pytest.approx(first["latency"] + second["latency"])
    assert attributes == {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "fake",
                          "gen_ai.request.model": "fake-model"}
    units = {metric.name: metric.unit for resource in traced.reader.get_metrics_data().resource_metrics
             for scope in resource.scope_metrics for metric in scope.metrics}
    assert units == {TOKEN_USAGE: "{token}", DURATION: "s"}


def test_a_failed_call_has_error_type_on_its_span_and_duration(traced):
    traced.model.enqueue(ProviderUnavailableError("upstream is down"))
    response, _ = _generate(traced)
    assert response.status_code == 502
    client = traced.only(SpanKind.CLIENT)
    assert client.attributes["error.type"] == "provider_unavailable"
    assert client.status.status_code == StatusCode.ERROR
    assert "gen_ai.usage.input_tokens" not in client.attributes
    [(attributes, _, count)] = traced.points(DURATION)
    assert attributes["error.type"] == "provider_unavailable" and count == 1
    assert traced.points(TOKEN_USAGE) == []
    assert traced.only(SpanKind.SERVER).attributes["http.response.status_code"] == 502


def test_a_cache_hit_is_an_internal_span_and_adds_no_token_usage(sqlite_url):
    traced = Traced(_settings(sqlite_url, CACHE_ENABLED="true"))
    _, first = _generate(traced, temperature=0)  # the default policy caches deterministic calls only
    _, hit = _generate(traced, temperature=0)
    assert hit["cache"] == "exact" and hit["cost"] == 0
    [miss_span] = traced.spans(SpanKind.CLIENT)
    [hit_span] = traced.spans(SpanKind.INTERNAL)
    assert miss_span.attributes["gen_ai.usage.input_tokens"] == first["input_tokens"]
    assert hit_span.name == "chat fake-model" and hit_span.attributes["ai_model_manager.cache"] == "exact"
    assert "gen_ai.usage.input_tokens" not in hit_span.attributes
    assert traced.tokens() == {"input": first["input_tokens"], "output": first["output_tokens"]}
    [(_, _, calls)] = traced.points(DURATION)
    assert calls == 1


def test_a_stream_span_ends_when_the_stream_does(traced):
    response = traced.client.post("/api/generate", json={"model": "fake", "prompt": "one two three",
                                                         "stream": True})
    assert traced.spans() == []  # the first chunk is out, the stream (and both spans) still open
    assert b'"done": true' in response.get_data()
    assert [span.kind for span in traced.spans()] == [SpanKind.CLIENT]  # the stream ended; its response is open
    response.close()  # what a WSGI server does after the last byte
    client, server = traced.only(SpanKind.CLIENT), traced.only(SpanKind.SERVER)
    assert client.parent.span_id == server.context.span_id
    assert client.attributes["gen_ai.request.stream"] is True
    assert client.attributes["gen_ai.response.time_to_first_chunk"] >= 0
    assert client.end_time <= server.end_time


def test_a_stream_the_client_abandons_ends_its_span_as_cancelled(traced):
    traced.model.enqueue("many words for a stream that nobody reads to its end")
    response = traced.client.post("/api/generate", json={"model": "fake", "prompt": "go", "stream": True})
    next(iter(response.response))
    response.close()
    client = traced.only(SpanKind.CLIENT)
    assert client.attributes["error.type"] == "CallCancelled"
    assert traced.only(SpanKind.SERVER).end_time >= client.end_time


def test_an_incoming_traceparent_continues_the_callers_trace_and_the_response_names_the_server_span(traced):
    response = traced.client.post("/api/generate", json={"model": "fake", "prompt": "hi"},
                                  headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
    server, client = traced.only(SpanKind.SERVER), traced.only(SpanKind.CLIENT)
    assert format(server.context.trace_id, "032x") == CALLER_TRACE
    assert format(server.parent.span_id, "016x") == CALLER_SPAN and server.parent.is_remote
    assert client.context.trace_id == server.context.trace_id
    assert response.headers["traceparent"] == f"00-{CALLER_TRACE}-{format(server.context.span_id, '016x')}-01"


def test_a_request_without_traceparent_starts_a_trace_the_response_names(traced):
    response = traced.client.get("/api/models")
    server = traced.only(SpanKind.SERVER)
    assert server.parent is None and server.name == "GET /api/models"
    _, trace_id, span_id, _ = response.headers["traceparent"].split("-")
    assert (int(trace_id, 16), int(span_id, 16)) == (server.context.trace_id, server.context.span_id)


# --- content and secrets ---------------------------------------------------------------------------------------

def test_prompts_and_answers_stay_out_of_spans_by_default(traced):
    _generate(traced, system="be brief")
    recorded = json.dumps([dict(span.attributes) for span in traced.spans()])
    assert "tell me a story" not in recorded and "be brief" not in recorded
    assert not any(key.startswith(("gen_ai.input", "gen_ai.output", "gen_ai.system_instructions"))
                   for span in traced.spans() for key in span.attributes)


def test_content_capture_records_the_conversation_and_the_answer_when_opted_in(settings):
    traced = Traced(settings, capture_content=True)
    traced.model.enqueue("once upon a time")
    _generate(traced, system="be brief")
    attributes = traced.only(SpanKind.CLIENT).attributes
    assert json.loads(attributes["gen_ai.system_instructions"]) == [{"type": "text", "content": "be brief"}]
    assert json.loads(attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "tell me a story"}]}]
    assert json.loads(attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "once upon a time"}], "finish_reason": "stop"}]


def test_the_content_setting_reaches_the_exported_telemetry(sqlite_url):
    off = telemetry_for(_settings(sqlite_url, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9"))
    on = telemetry_for(_settings(sqlite_url, OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
                                 OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true"))
    try:
        assert off is not None and on is not None
        assert (off.capture_content, on.capture_content) == (False, True)
    finally:
        for telemetry in (off, on):
            if telemetry is not None:
                telemetry.shutdown()


def test_api_keys_never_reach_a_span(sqlite_url):
    traced = Traced(_settings(sqlite_url, API_KEYS="secret-key-123"))
    response = traced.client.post("/api/generate", json={"model": "fake", "prompt": "hi"},
                                  headers={"Authorization": "Bearer secret-key-123", "X-API-Key": "secret-key-123"})
    assert response.status_code == 200
    refused = traced.client.get("/api/models", headers={"Authorization": "Bearer wrong-key-456"})
    assert refused.status_code == 401
    assert len(traced.spans(SpanKind.SERVER)) == 2  # the refused request is traced too
    recorded = json.dumps([{**span.attributes} for span in traced.spans()], default=str)
    assert "secret-key-123" not in recorded and "wrong-key-456" not in recorded


# --- off by default ---------------------------------------------------------------------------------------------

def test_without_an_endpoint_nothing_is_hooked_or_propagated(app, client, svc):
    assert svc.telemetry is None and telemetry_for(svc.settings) is None
    assert not any(isinstance(hook, GenAICallTelemetry) for hook in svc.registry.call_path.hooks)
    response = client.post("/api/generate", json={"model": "fake", "prompt": "hi"},
                           headers={"traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
    assert response.status_code == 200 and "traceparent" not in response.headers


# --- a real OTLP/HTTP receiver ------------------------------------------------------------------------------------

def test_spans_and_metrics_reach_an_otlp_receiver(sqlite_url):
    with OtlpReceiver() as receiver:
        app = create_app(_settings(sqlite_url, OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint), {"TESTING": True})
        telemetry = services(app).telemetry
        assert telemetry is not None
        services(app).registry.register_model(FakeModel(), aliases=("fake",))
        try:
            body = app.test_client().post("/api/generate", json={"model": "fake", "prompt": "hello there"}).get_json()
            telemetry.force_flush()
            spans = receiver.wait_for(lambda: len(receiver.spans()) >= 2 and receiver.spans())
            points = receiver.wait_for(lambda: receiver.points(TOKEN_USAGE))
            durations = receiver.points(DURATION)
        finally:
            telemetry.shutdown()
    [client] = [span for span in spans if span.name == "chat fake-model"]
    [server] = [span for span in spans if span.name == "POST /api/generate"]
    assert client.parent_span_id == server.span_id and client.trace_id == server.trace_id
    assert client.resource["service.name"] == "ai-model-manager"
    assert {key: client.attributes[key] for key in ("gen_ai.operation.name", "gen_ai.provider.name",
                                                    "gen_ai.request.model", "gen_ai.usage.input_tokens",
                                                    "gen_ai.usage.output_tokens")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "fake", "gen_ai.request.model": "fake-model",
        "gen_ai.usage.input_tokens": body["input_tokens"], "gen_ai.usage.output_tokens": body["output_tokens"]}
    by_type = {point.attributes["gen_ai.token.type"]: point for point in points}
    assert (by_type["input"].sum, by_type["output"].sum) == (body["input_tokens"], body["output_tokens"])
    assert by_type["input"].unit == "{token}" and by_type["input"].attributes["gen_ai.request.model"] == "fake-model"
    assert [(point.unit, point.count) for point in durations] == [("s", 1)]


# --- a real provider SDK on the wire ------------------------------------------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_an_openai_compatible_call_carries_what_the_provider_reported(settings, stream):
    traced = Traced(settings)
    with OpenAIWireServer() as server:
        server.enqueue(WireReply(text="Hi there", prompt_tokens=12, completion_tokens=3, cached_tokens=4))
        model = OpenAICompatibleModel("fast-upstream", model="fake-gpt", base_url=server.base_url,
                                      api_key="sk-wire-secret-0123456789", timeout=5.0,
                                      pricing=ModelPricing(input_per_million=0.15, output_per_million=0.6))
        services(traced.app).registry.register_model(model)
        response = traced.client.post("/v1/chat/completions", json={
            "model": "fast-upstream", "messages": [{"role": "user", "content": "Say hi"}], "stream": stream})
        assert response.status_code == 200
        response.get_data()
    client = traced.only(SpanKind.CLIENT)
    assert client.name == "chat fake-gpt"
    assert {key: client.attributes.get(key) for key in (
        "gen_ai.provider.name", "gen_ai.request.model", "gen_ai.response.id", "gen_ai.response.model",
        "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens",
        "server.address", "server.port", "ai_model_manager.model")} == {
        "gen_ai.provider.name": "openai", "gen_ai.request.model": "fake-gpt", "gen_ai.response.id": "chatcmpl-wire",
        "gen_ai.response.model": "fake-gpt", "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 3,
        "gen_ai.usage.cache_read.input_tokens": 4, "server.address": "127.0.0.1",
        "server.port": int(server.base_url.split(":")[2].split("/")[0]), "ai_model_manager.model": "fast-upstream"}
    assert "sk-wire-secret" not in json.dumps(dict(client.attributes), default=str)
    [(attributes, _, _)] = traced.points(DURATION)
    assert attributes["gen_ai.response.model"] == "fake-gpt" and attributes["gen_ai.provider.name"] == "openai"
