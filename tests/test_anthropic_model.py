"""AnthropicModel with the real `anthropic` SDK against a local server that speaks the Messages wire format.

Costs are recomputed here from the usage the server reported (Anthropic's way: `input_tokens` without the
cache reads and writes) and the pricing table, so cache reads and writes are checked at their own prices.
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

import pytest

from core.settings import Settings
from models.anthropic_model import AnthropicModel
from models.errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    MissingAPIKeyError,
    ProviderAuthError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)
from models.pricing import LongContextTier, ModelPricing, PricingTable
from models.retry import RetryPolicy
from tests.anthropic_wire_server import AnthropicWireServer, WireReply, usage_object

KEY = "sk-ant-test-secret-key-0123456789abcdef"
HAIKU = "claude-haiku-4-5"  # the SDK warns (DeprecationWarning, an error under pytest) for some other ids
PRICES = PricingTable.load()
FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.01, jitter=0.001)
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALL = {"id": "toolu_01", "name": "get_weather", "input": {"city": "Paris", "unit": "celsius"}}


def expected_cost(pricing: ModelPricing, reported: dict[str, int]) -> float:
    """The cost of Anthropic's reported usage, computed here independently of `ModelPricing.cost`."""
    written, read = reported["cache_creation_input_tokens"], reported["cache_read_input_tokens"]
    prompt = reported["input_tokens"] + written + read
    tier = pricing.long_context if pricing.long_context and prompt > pricing.long_context.threshold_tokens else pricing
    assert tier.cached_input_per_million is not None and tier.cache_write_per_million is not None
    return (reported["input_tokens"] * tier.input_per_million + read * tier.cached_input_per_million
            + written * tier.cache_write_per_million + reported["output_tokens"] * tier.output_per_million) / 1e6


@pytest.fixture
def server():
    with AnthropicWireServer() as server:
        yield server


@pytest.fixture
def db(provider_db):
    return provider_db


@pytest.fixture
def make_model(server, db):
    """An AnthropicModel on the test server, registered so its calls are recorded in `db`."""
    registry, _ = db

    def make(name: str = HAIKU, **kwargs: Any) -> AnthropicModel:
        kwargs.setdefault("base_url", server.base_url)
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("retry", FAST_RETRY)
        model = AnthropicModel(name, pricing=PRICES.get(name), **kwargs)
        registry.register_model(model)
        return model

    return make


def only_row(db) -> dict:
    _, log = db
    rows = log.list()
    assert len(rows) == 1, rows
    return rows[0]


# --- usage, cost and the request body ---------------------------------------------------------------

@pytest.mark.parametrize("streaming", [False, True])
def test_cache_reads_and_writes_are_part_of_the_input_and_priced_exactly(server, make_model, db, streaming):
    reply = WireReply(text="Hi there friend", input_tokens=1200, output_tokens=300, cache_creation_input_tokens=2000,
                      cache_read_input_tokens=5000, stop_reason="max_tokens")
    server.enqueue(reply)
    model = make_model()
    result = model.generate_stream("Say hi").result if streaming else model.generate("Say hi")
    assert result["response"] == "Hi there friend" and result["finish_reason"] == "length"
    assert (result["input_tokens"], result["cached_tokens"], result["cache_write_tokens"],
            result["output_tokens"], result["tokens"]) == (8200, 5000, 2000, 300, 8500)
    cost = expected_cost(model.pricing, usage_object(reply, server.messages()[0]))
    assert cost == pytest.approx((1200 * 1.0 + 5000 * 0.10 + 2000 * 1.25 + 300 * 5.0) / 1e6, rel=1e-12)
    assert result["cost"] == pytest.approx(cost, rel=1e-12)
    row = only_row(db)
    assert (row["input_tokens"], row["cached_tokens"], row["cache_write_tokens"], row["output_tokens"]) == (
        8200, 5000, 2000, 300)
    assert row["cost"] == pytest.approx(cost, rel=1e-12) and row["stream"] is streaming
    assert (row["provider"], row["status"]) == ("anthropic", "success")


def test_a_prompt_past_200k_with_its_cache_tokens_is_priced_at_the_long_context_tier(server, make_model):
    reply = WireReply(text="long", input_tokens=1000, output_tokens=100, cache_creation_input_tokens=150_000,
                      cache_read_input_tokens=60_000)  # uncached input alone is far below the threshold
    server.enqueue(reply)
    model = make_model("claude-sonnet-4")
    result = model.generate("Summarize")
    cost = expected_cost(model.pricing, usage_object(reply, server.messages()[0]))
    assert cost == pytest.approx((1000 * 6.0 + 60_000 * 0.60 + 150_000 * 7.50 + 100 * 22.50) / 1e6, rel=1e-12)
    assert result["cost"] == pytest.approx(cost, rel=1e-12)


def test_cache_prices_default_to_the_input_price_and_the_tier_counts_cached_tokens():
    pricing = ModelPricing(input_per_million=2.0, output_per_million=8.0, cache_write_per_million=2.5,
                           long_context=LongContextTier(threshold_tokens=100, input_per_million=4.0,
                                                        output_per_million=16.0))
    assert pricing.cost(100, 10, 30, 20) == pytest.approx((50 * 2.0 + 30 * 2.0 + 20 * 2.5 + 10 * 8.0) / 1e6, rel=1e-12)
    assert pricing.cost(101, 0, 31, 20) == pytest.approx(101 * 4.0 / 1e6, rel=1e-12)  # the tier has no cache prices
    assert pricing.cost(100, 10, 30) == pricing.cost(100, 10, 30, 0)  # existing callers unchanged


def test_system_messages_params_and_headers_as_the_messages_api_takes_them(server, make_model):
    make_model(model="claude-haiku-4-5-20251001").generate(
        messages=[{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"},
                  {"role": "assistant", "content": "Hi."}, {"role": "system", "content": "Use French."},
                  {"role": "user", "content": "Again"}],
        max_tokens=64, stop=["END"])
    [request] = server.requests
    assert (request["method"], request["path"]) == ("POST", "/v1/messages")
    assert request["json"] == {
        "model": "claude-haiku-4-5-20251001", "max_tokens": 64, "system": "You are terse.\n\nUse French.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]},
                     {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]},
                     {"role": "user", "content": [{"type": "text", "text": "Again"}]}],
        "stop_sequences": ["END"],
    }
    headers = {name.lower(): value for name, value in request["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}" and headers["anthropic-version"]
    assert headers["x-stainless-retry-count"] == "0"  # the SDK's own retries are off


def test_max_tokens_defaults_to_the_models_output_limit(server, make_model):
    make_model("claude-3-5-haiku", model=HAIKU).generate("hi")  # the limit follows the upstream id
    make_model().generate("hi")
    assert [body["max_tokens"] for body in server.messages()] == [64_000, 64_000]
    assert make_model("claude-3-5-haiku").max_output_tokens == 8_192


@pytest.mark.parametrize("params", [{"temperature": 0.2}, {"top_p": 0.9}, {"top_k": 40}, {"seed": 7},
                                    {"response_format": {"type": "json_object"}}])
def test_parameters_the_messages_api_lacks_are_refused_by_name_before_the_upstream(server, make_model, params):
    with pytest.raises(ValueError) as info:
        make_model().generate("hi", **params)
    assert info.value.code == "unsupported_parameter" and [f["field"] for f in info.value.fields] == list(params)
    assert server.requests == []


# --- tools ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("streaming", [False, True])
def test_a_tool_use_answer_becomes_our_tool_calls(server, make_model, db, streaming):
    server.enqueue(WireReply(text="Let me check." if not streaming else "", tool_uses=[CALL], output_tokens=20))
    model = make_model()
    kwargs: dict[str, Any] = {"tools": [WEATHER], "tool_choice": "required"}
    result = model.generate_stream("Weather?", **kwargs).result if streaming else model.generate("Weather?", **kwargs)
    assert result["finish_reason"] == "tool_calls"
    [call] = result["tool_calls"]
    assert (call["id"], call["type"], call["function"]["name"]) == ("toolu_01", "function", "get_weather")
    assert json.loads(call["function"]["arguments"]) == CALL["input"]  # streamed: joined from 5-character pieces
    body = server.messages()[0]
    assert body["tools"] == [{"name": "get_weather", "description": "The weather in a city",
                              "input_schema": WEATHER["function"]["parameters"]}]
    assert body["tool_choice"] == {"type": "any"}
    assert only_row(db)["tool_calls"] == result["tool_calls"]


@pytest.mark.parametrize(("choice", "sent"), [("auto", {"type": "auto"}), ("none", {"type": "none"}),
                                              ({"type": "function", "function": {"name": "get_weather"}},
                                               {"type": "tool", "name": "get_weather"})])
def test_tool_choice_mapping(server, make_model, choice, sent):
    make_model().generate("Weather?", tools=[WEATHER], tool_choice=choice)
    assert server.messages()[0]["tool_choice"] == sent


def test_a_conversation_with_tool_results_maps_to_tool_use_and_tool_result_blocks(server, make_model):
    calls = [{"id": f"toolu_0{n}", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}
             for n, arguments in ((1, '{"city":"Paris"}'), (2, '{"city":"Oslo"}'))]
    result = make_model().generate(messages=[
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_01", "content": "18C"},
        {"role": "tool", "tool_call_id": "toolu_02", "content": "4C"},
    ], tools=[WEATHER])
    assert result["response"] == "claude says: "  # the last user turn holds only tool results
    assert server.messages()[0]["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris and Oslo?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "toolu_02", "name": "get_weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "18C"},
                                     {"type": "tool_result", "tool_use_id": "toolu_02", "content": "4C"}]},
    ]


# --- retries and error mapping ----------------------------------------------------------------------

@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("status", [429, 529])
def test_429_and_529_overloaded_are_retried_then_succeed(server, make_model, db, streaming, status, caplog):
    server.enqueue(WireReply(status=status), WireReply(text="second try", input_tokens=3, output_tokens=2))
    model = make_model()
    with caplog.at_level(logging.INFO, logger="models.retry"):
        result = model.generate_stream("hi").result if streaming else model.generate("hi")
    assert (result["response"], result["input_tokens"], result["output_tokens"]) == ("second try", 3, 2)
    assert len(server.messages()) == 2 and "attempt 1/3 failed" in caplog.text
    assert only_row(db)["status"] == "success"


@pytest.mark.parametrize(("reply", "error", "code", "attempts"), [
    (WireReply(status=529, message="Overloaded"), ProviderUnavailableError, "provider_unavailable", 3),
    (WireReply(status=429, message="Number of requests exceeded"), RateLimitedError, "rate_limited", 3),
    (WireReply(status=500, message="Internal error"), ProviderUnavailableError, "provider_unavailable", 3),
    (WireReply(status=401, message="invalid x-api-key"), ProviderAuthError, "provider_auth_error", 1),
    (WireReply(status=403, message="no access"), ProviderAuthError, "provider_auth_error", 1),
    (WireReply(status=404, message="model: claude-nope"), InvalidRequestError, "invalid_request", 1),
    (WireReply(status=400, message="max_tokens: too large"), InvalidRequestError, "invalid_request", 1),
    (WireReply(status=400, message="prompt is too long: 210000 tokens > 200000 maximum"),
     ContextLengthExceededError, "context_length_exceeded", 1),
])
def test_error_statuses_map_to_our_errors(server, make_model, db, reply, error, code, attempts):
    server.enqueue(*[reply] * 3)
    with pytest.raises(error, match=reply.message) as caught:
        make_model().generate("hi")
    assert type(caught.value) is error and caught.value.provider_status == reply.status
    assert caught.value.details["provider"] == "anthropic"
    assert len(server.messages()) == attempts
    row = only_row(db)
    assert (row["status"], row["error_type"]) == ("error", code)


def test_an_error_event_before_any_text_is_retried(server, make_model, db):
    server.enqueue(WireReply(chunks=[], stream_error="overloaded_error", input_tokens=99),
                   WireReply(text="second try"))
    result = make_model().generate_stream("Say hello").result
    assert result["response"] == "second try" and result["input_tokens"] == 2  # no counts from the failed try
    assert len(server.messages()) == 2 and only_row(db)["status"] == "success"


def test_an_error_event_after_the_first_chunk_is_mapped_and_not_retried(server, make_model, db):
    server.enqueue(WireReply(chunks=["partial", " answer"], stream_error="overloaded_error", message="Overloaded"))
    stream = make_model().generate_stream("Say hello")
    assert next(stream) == "partial"
    with pytest.raises(ProviderUnavailableError, match="529 overloaded_error: Overloaded") as caught:
        list(stream)
    assert caught.value.provider_status == 529 and len(server.messages()) == 1
    row = only_row(db)
    assert (row["status"], row["error_type"], row["response"]) == ("error", "provider_unavailable", "partial answer")


def test_a_stream_cut_after_its_first_chunk_fails_with_one_error_row(server, make_model, db):
    server.enqueue(WireReply(chunks=["partial", " answer"], fault="close"))
    received = []
    with pytest.raises(ProviderUnavailableError):
        for chunk in make_model().generate_stream("hello"):
            received.append(chunk)
    assert received == ["partial", " answer"] and len(server.messages()) == 1
    row = only_row(db)
    assert (row["status"], row["error_type"], row["response"]) == ("error", "provider_unavailable", "partial answer")


def test_a_stream_that_drips_forever_ends_at_the_stream_timeout(server, make_model, db):
    server.enqueue(WireReply(chunks=["first"], fault="drip", chunk_delay=0.05))
    with pytest.raises(ProviderTimeoutError, match=r"did not end within 0.3s \(STREAM_TIMEOUT\)"):
        list(make_model(stream_timeout=0.3).generate_stream("hello"))
    assert server.wait_for_hangup() and only_row(db)["error_type"] == "provider_timeout"


def test_a_timeout_is_retried_then_raises_provider_timeout(server, make_model, db):
    server.enqueue(WireReply(text="late", delay=1.0), WireReply(text="late", delay=1.0))
    with pytest.raises(ProviderTimeoutError, match=r"within 0.2s \(gave up after 2 attempts\)"):
        make_model(timeout=0.2, retry=RetryPolicy(attempts=2, initial_delay=0.001, jitter=0.001)).generate("hi")
    assert only_row(db)["error_type"] == "provider_timeout"


def test_a_200_that_is_not_json_is_a_malformed_response(server, make_model, db):
    server.enqueue(WireReply(fault="not_json"))
    with pytest.raises(Exception, match="502 Bad Gateway") as caught:
        make_model().generate("hi")
    assert caught.value.code == "provider_error" and len(server.messages()) == 1


# --- keys -------------------------------------------------------------------------------------------

def test_the_key_never_reaches_errors_logs_repr_or_the_request_log(make_model, db, caplog):
    with AnthropicWireServer(api_key="the-right-key") as strict:  # its 401 echoes the key it was sent
        model = make_model(base_url=strict.base_url)
        with caplog.at_level(logging.DEBUG), pytest.raises(ProviderAuthError) as caught:
            model.generate("hi")
    error = caught.value
    assert "invalid x-api-key: [redacted]" in str(error) and KEY not in repr(error.details)
    assert KEY not in "".join(traceback.format_exception(error))
    assert KEY not in caplog.text and KEY not in repr(model)
    row = only_row(db)
    assert row["error_type"] == "provider_auth_error" and KEY not in repr(row)


def test_a_missing_key_fails_naming_the_variable_without_calling_anthropic(server, make_model, db):
    with pytest.raises(MissingAPIKeyError, match="set CLAUDE_KEY"):
        make_model(api_key=None, api_key_env="CLAUDE_KEY").generate("hi")
    assert server.requests == [] and only_row(db)["error_type"] == "missing_api_key"


def test_count_tokens_is_the_documented_byte_bound(make_model):
    model = make_model()
    assert model.count_tokens("héllo") == 6 and model.capabilities.token_counting is False


# --- through the HTTP API ---------------------------------------------------------------------------

@pytest.fixture
def settings(sqlite_url, server) -> Settings:
    """The conftest `app` on settings with an Anthropic key: the Claude models of the pricing table register."""
    return Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": sqlite_url, "DEFAULT_MODEL": "fake-model", "ANTHROPIC_API_KEY": KEY,
        "ANTHROPIC_BASE_URL": server.base_url, "ANTHROPIC_TIMEOUT": "5"})


def test_claude_models_register_from_settings_with_their_prices(svc):
    registry = svc.registry
    assert {"claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-3-5-haiku"} <= set(
        registry.list_models())
    model = registry.get_model(HAIKU)
    assert isinstance(model, AnthropicModel) and model.pricing == PRICES.get(HAIKU)
    assert model.describe()["pricing"]["cache_write_per_million"] == 1.25


@pytest.mark.parametrize("streaming", [False, True])
def test_api_generate_answers_and_records_the_exact_cost(client, svc, server, streaming):
    reply = WireReply(text="Hello from Claude", input_tokens=40, output_tokens=6, cache_creation_input_tokens=100,
                      cache_read_input_tokens=300)
    server.enqueue(reply)
    response = client.post("/api/generate", json={"prompt": "hello", "model": HAIKU, "stream": streaming})
    assert response.status_code == 200
    if streaming:
        events = [json.loads(line.removeprefix("data: ")) for line in response.text.split("\n\n") if line]
        body = events[-1]
        assert "".join(e["delta"] for e in events[:-1]) == "Hello from Claude"
    else:
        body = response.get_json()
        assert body["response"] == "Hello from Claude"
    cost = expected_cost(PRICES.get(HAIKU), usage_object(reply, server.messages()[0]))
    assert body["cost"] == pytest.approx(cost, rel=1e-12)
    assert (body["input_tokens"], body["cached_tokens"], body["cache_write_tokens"]) == (440, 300, 100)
    row = svc.request_log.get(body["request_id"])
    assert row["cost"] == pytest.approx(cost, rel=1e-12) and row["cache_write_tokens"] == 100


@pytest.mark.parametrize("streaming", [False, True])
def test_gateway_chat_completions_answers_and_records_the_exact_cost(client, svc, server, streaming):
    reply = WireReply(text="Bonjour", input_tokens=12, output_tokens=3, cache_read_input_tokens=1000)
    server.enqueue(reply)
    response = client.post("/v1/chat/completions", json={
        "model": HAIKU, "stream": streaming, "messages": [{"role": "system", "content": "French"},
                                                          {"role": "user", "content": "Hello"}]})
    assert response.status_code == 200
    if streaming:
        chunks = [json.loads(line.removeprefix("data: ")) for line in response.text.split("\n\n")
                  if line.startswith("data: {")]
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == "Bonjour" and response.text.rstrip().endswith("data: [DONE]")
    else:
        completion = response.get_json()
        assert completion["choices"][0]["message"]["content"] == "Bonjour"
        assert completion["usage"]["prompt_tokens"] == 1012
    assert server.messages()[0]["system"] == "French"
    row = svc.request_log.get(response.headers["X-Request-ID"])
    assert row["cost"] == pytest.approx(expected_cost(PRICES.get(HAIKU), usage_object(reply, server.messages()[0])),
                                        rel=1e-12)
    assert (row["input_tokens"], row["cached_tokens"], row["cache_write_tokens"]) == (1012, 1000, 0)
