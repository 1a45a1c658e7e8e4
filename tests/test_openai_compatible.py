"""OpenAICompatibleModel with the real `openai` SDK against a local server that speaks the chat-completions format."""

from __future__ import annotations

import logging
import socket
import traceback

import pytest

from models.errors import (
    InvalidRequestError,
    MissingAPIKeyError,
    ProviderAuthError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)
from models.openai_compatible import PLACEHOLDER_KEY, OpenAICompatibleModel
from models.pricing import ModelPricing
from models.retry import RetryPolicy
from tests.openai_wire_server import OpenAIWireServer, WireReply

KEY = "sk-test-secret-key-0123456789abcdef"
PRICING = ModelPricing(input_per_million=0.15, output_per_million=0.6, cached_input_per_million=0.075)
FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.01, jitter=0.001)


@pytest.fixture
def server():
    with OpenAIWireServer() as server:
        yield server


@pytest.fixture
def db(provider_db):
    return provider_db


@pytest.fixture
def make_model(server, db):
    """An OpenAICompatibleModel on the test server, registered so its calls are recorded in `db`."""
    registry, _ = db

    def make(**kwargs) -> OpenAICompatibleModel:
        kwargs.setdefault("base_url", server.base_url)
        kwargs.setdefault("api_key", KEY)
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("retry", FAST_RETRY)
        model = OpenAICompatibleModel("fast-upstream", model="fake-gpt", pricing=PRICING, **kwargs)
        registry.register_model(model)
        return model

    return make


def only_row(db) -> dict:
    """The single request-log row; fails if the call left none or several."""
    _, log = db
    rows = log.list()
    assert len(rows) == 1, rows
    return rows[0]


# --- usage and cost ---------------------------------------------------------------------------------

def test_usage_mapping_with_cached_and_reasoning_tokens_and_exact_cost(server, make_model, db):
    server.enqueue(WireReply(text="Hi there", prompt_tokens=1000, completion_tokens=250,
                             cached_tokens=600, reasoning_tokens=200))
    result = make_model().generate("Say hi")
    assert result["response"] == "Hi there"
    assert (result["input_tokens"], result["cached_tokens"]) == (1000, 600)
    assert (result["output_tokens"], result["thinking_tokens"]) == (250, 200)
    assert result["tokens"] == 1250
    # uncached input at 0.15, cached input at 0.075, output (reasoning included) at 0.6, per million
    assert result["cost"] == pytest.approx((400 * 0.15 + 600 * 0.075 + 250 * 0.6) / 1e6, rel=1e-12)
    assert result["finish_reason"] == "stop"
    assert (result["provider"], result["model"]) == ("openai_compatible", "fast-upstream")
    row = only_row(db)
    assert (row["input_tokens"], row["cached_tokens"], row["thinking_tokens"], row["output_tokens"]) == (
        1000, 600, 200, 250)
    assert row["cost"] == pytest.approx(result["cost"], rel=1e-12) and row["status"] == "success"


def test_reply_without_token_details_counts_zero_cached_and_thinking(make_model):
    result = make_model().generate("one two three", system="be brief")
    assert result["response"] == "openai says: one two three"
    assert (result["input_tokens"], result["output_tokens"], result["tokens"]) == (5, 5, 10)
    assert (result["cached_tokens"], result["thinking_tokens"]) == (0, 0)
    assert result["cost"] == pytest.approx((5 * 0.15 + 5 * 0.6) / 1e6, rel=1e-12)


def test_request_carries_upstream_model_messages_options_and_key(server, make_model):
    make_model().generate("Say hi", system="You are terse.", temperature=0.2, max_tokens=64,
                          top_p=0.9, seed=7, stop=["END"])
    [request] = server.requests
    assert (request["method"], request["path"]) == ("POST", "/v1/chat/completions")
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert request["json"] == {
        "model": "fake-gpt",
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Say hi"}],
        "temperature": 0.2, "max_tokens": 64, "top_p": 0.9, "seed": 7, "stop": ["END"],
    }
    assert request["headers"]["x-stainless-retry-count"] == "0"  # the SDK's own retries are off
    assert request["headers"]["user-agent"].startswith("OpenAI/Python")  # still the official SDK's request
    assert not {"x-stainless-os", "x-stainless-arch", "x-stainless-runtime"} & set(request["headers"])


@pytest.mark.parametrize(("params", "code"), [
    ({"unknown_option": 1}, "validation_error"),  # no such parameter anywhere
    ({"top_k": 5}, "unsupported_parameter"),  # a parameter, but not one chat completions has
])
def test_unknown_and_unsupported_parameters_are_refused_by_name_before_the_upstream(server, make_model, params,
                                                                                   code):
    with pytest.raises(ValueError) as info:
        make_model().generate("Say hi", **params)
    assert info.value.code == code and [f["field"] for f in info.value.fields] == list(params)
    assert server.requests == []


# --- streaming --------------------------------------------------------------------------------------

def test_stream_gives_several_chunks_and_usage_from_the_final_usage_chunk(server, make_model, db):
    server.enqueue(WireReply(chunks=["Hello", " wide", " world"], prompt_tokens=40, completion_tokens=30,
                             cached_tokens=10, reasoning_tokens=25, finish_reason="length"))
    stream = make_model().generate_stream("Say hello")
    chunks = list(stream)
    assert chunks == ["Hello", " wide", " world"]
    result = stream.result
    assert result["response"] == "Hello wide world"
    # 30 output tokens, not the 3 words streamed: the counts are the final usage chunk's
    assert (result["input_tokens"], result["output_tokens"], result["cached_tokens"],
            result["thinking_tokens"], result["tokens"]) == (40, 30, 10, 25, 70)
    assert result["cost"] == pytest.approx((30 * 0.15 + 10 * 0.075 + 30 * 0.6) / 1e6, rel=1e-12)
    assert result["finish_reason"] == "length" and result["ttft"] is not None
    [body] = server.completions()
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    row = only_row(db)
    assert row["stream"] and row["output_tokens"] == 30 and row["response"] == "Hello wide world"


def test_stream_error_after_the_first_chunk_is_not_retried(server, make_model, db):
    server.enqueue(WireReply(chunks=["partial", " answer"], stream_error=503, message="upstream crashed"))
    stream = make_model().generate_stream("Say hello")
    assert next(stream) == "partial"
    with pytest.raises(ProviderUnavailableError, match="upstream crashed") as caught:
        list(stream)
    assert caught.value.provider_status == 503
    assert len(server.completions()) == 1
    row = only_row(db)
    assert (row["status"], row["error_type"], row["response"]) == ("error", "provider_unavailable", "partial answer")


def test_stream_error_before_any_text_is_retried(server, make_model, db):
    server.enqueue(WireReply(chunks=[], stream_error=503, prompt_tokens=99), WireReply(text="second try"))
    result = make_model().generate_stream("Say hello").result
    assert result["response"] == "second try" and result["input_tokens"] == 2  # no counts from the failed try
    assert len(server.completions()) == 2
    assert only_row(db)["status"] == "success"


def test_closing_a_stream_early_records_it_as_cancelled(server, make_model, db):
    server.enqueue(WireReply(chunks=["a", " b", " c"], chunk_delay=0.05))
    stream = make_model().generate_stream("go")
    assert next(stream) == "a"
    stream.close()
    assert only_row(db)["status"] == "cancelled"


# --- retries and error mapping ----------------------------------------------------------------------

@pytest.mark.parametrize("streaming", [False, True])
def test_429_then_503_then_success_recovers(server, make_model, db, streaming, caplog):
    server.enqueue(WireReply(status=429), WireReply(status=503),
                   WireReply(text="third time lucky", prompt_tokens=3, completion_tokens=3))
    model = make_model()
    with caplog.at_level(logging.INFO, logger="models.retry"):
        result = model.generate_stream("hi").result if streaming else model.generate("hi")
    assert result["response"] == "third time lucky" and result["status"] == "success"
    assert (result["input_tokens"], result["output_tokens"]) == (3, 3)
    assert len(server.completions()) == 3
    assert "attempt 1/3 failed (RateLimitError)" in caplog.text
    assert "attempt 2/3 failed (InternalServerError)" in caplog.text
    assert only_row(db)["status"] == "success"


def test_400_is_not_retried_and_keeps_the_upstream_message(server, make_model, db):
    server.enqueue(WireReply(status=400, message="max_tokens is too large", error_code="invalid_value"))
    with pytest.raises(InvalidRequestError, match="max_tokens is too large") as caught:
        make_model().generate("hi")
    assert caught.value.provider_status == 400
    assert caught.value.details["provider_code"] == "invalid_value"
    assert len(server.completions()) == 1
    row = only_row(db)
    assert (row["status"], row["error_type"]) == ("error", "invalid_request")
    assert "max_tokens is too large" in row["error_message"]


@pytest.mark.parametrize(("status", "error"), [(429, RateLimitedError), (503, ProviderUnavailableError),
                                               (500, ProviderUnavailableError)])
def test_retries_exhausted_map_to_the_last_status(server, make_model, db, status, error):
    server.enqueue(*[WireReply(status=status, message=f"still {status}")] * 3)
    with pytest.raises(error, match=rf"{status} .*still {status} \(gave up after 3 attempts\)") as caught:
        make_model().generate("hi")
    assert caught.value.provider_status == status
    assert len(server.completions()) == 3
    assert only_row(db)["error_type"] == error.code


def test_timeout_is_retried_then_raises_provider_timeout(server, make_model, db):
    server.enqueue(WireReply(text="too late", delay=1.0), WireReply(text="too late", delay=1.0))
    with pytest.raises(ProviderTimeoutError, match=r"within 0.2s \(gave up after 2 attempts\)"):
        make_model(timeout=0.2, retry=RetryPolicy(attempts=2, initial_delay=0.001, jitter=0.001)).generate("hi")
    assert len(server.completions()) == 2
    row = only_row(db)
    assert (row["status"], row["error_type"]) == ("error", "provider_timeout")


def test_unreachable_upstream_is_provider_unavailable(make_model, db):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ProviderUnavailableError, match="is unreachable: .*gave up after 3 attempts"):
        make_model(base_url=f"http://127.0.0.1:{port}/v1").generate("hi")
    assert only_row(db)["error_type"] == "provider_unavailable"


# --- keys -------------------------------------------------------------------------------------------

def test_the_key_never_reaches_errors_logs_repr_or_the_request_log(make_model, db, caplog):
    with OpenAIWireServer(api_key="the-right-key") as strict:  # its 401 echoes the key it was sent
        model = make_model(base_url=strict.base_url)
        with caplog.at_level(logging.DEBUG), pytest.raises(ProviderAuthError) as caught:
            model.generate("hi")
        assert strict.requests[0]["headers"]["authorization"] == f"Bearer {KEY}"  # it was sent...
    error = caught.value
    assert error.provider_status == 401 and "Incorrect API key provided: [redacted]" in str(error)
    assert KEY not in str(error) and KEY not in repr(error.details)  # ...and never repeated,
    assert KEY not in "".join(traceback.format_exception(error))  # not even by the SDK error it replaced
    assert any(record.name.startswith("openai") for record in caplog.records)  # the SDK's debug log was seen
    assert KEY not in caplog.text and KEY not in repr(model)
    row = only_row(db)
    assert row["error_type"] == "provider_auth_error"
    assert KEY not in repr(row)


def test_without_a_key_a_placeholder_is_sent_and_ambient_openai_key_ignored(server, make_model, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ambient-must-not-be-sent")
    make_model(api_key=None).generate("hi")
    assert server.requests[0]["headers"]["authorization"] == f"Bearer {PLACEHOLDER_KEY}"


def test_missing_key_named_by_api_key_env_fails_without_calling_upstream(server, make_model, db):
    with pytest.raises(MissingAPIKeyError, match="set UPSTREAM_KEY"):
        make_model(api_key=None, api_key_env="UPSTREAM_KEY").generate("hi")
    assert server.requests == []
    assert only_row(db)["error_type"] == "missing_api_key"


# --- token counting and the retry policy ------------------------------------------------------------

def test_count_tokens_is_a_documented_upper_bound_not_a_count(make_model):
    model = make_model()
    assert model.count_tokens("héllo wörld") == len("héllo wörld".encode())  # 13 bytes
    assert model.capabilities.token_counting is False


def test_retry_delays_grow_exponentially_and_are_capped():
    policy = RetryPolicy(attempts=6, initial_delay=1.0, max_delay=5.0, exp_base=2.0, jitter=0.0)
    assert [policy.delay(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    jittered = RetryPolicy(initial_delay=1.0, jitter=0.5)
    assert all(1.0 <= jittered.delay(1) <= 1.5 for _ in range(50))
    assert [status for status in range(400, 600) if policy.retries_status(status)] == [408, 429, 500, 502, 503, 504]
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
