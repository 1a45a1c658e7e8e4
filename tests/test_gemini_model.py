"""GeminiModel with the real google-genai SDK against a local server that speaks Gemini's wire format."""

from __future__ import annotations

import json
import logging

import pytest

from api.app import create_app
from api.services import services
from core.settings import Settings
from models import retry as retry_module
from models.errors import (
    InvalidRequestError,
    MissingAPIKeyError,
    ProviderAuthError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)
from models.gemini_model import GeminiModel
from models.model_registry import ModelRegistry
from models.pricing import PricingTable
from models.request_log import RequestLogRepository
from storage.database import create_db_engine, upgrade_schema
from tests.gemini_wire_server import GeminiWireServer, WireReply

KEY = "AIzaSy-test-secret-key-0123456789"
PRICES = PricingTable.load()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Tiny backoff so the retry tests take milliseconds."""
    monkeypatch.setattr(retry_module, "RETRY_INITIAL_DELAY", 0.001)
    monkeypatch.setattr(retry_module, "RETRY_MAX_DELAY", 0.01)
    monkeypatch.setattr(retry_module, "RETRY_JITTER", 0.001)


@pytest.fixture
def db(tmp_path):
    """A registry (no default models) on a fresh SQLite database, and its request log."""
    url = f"sqlite:///{tmp_path / 'gemini.db'}"
    engine = create_db_engine(url)
    upgrade_schema(engine)
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": url})
    registry = ModelRegistry(engine, settings=settings, pricing=PRICES, register_defaults=False)
    yield registry, RequestLogRepository(engine)
    engine.dispose()


@pytest.fixture
def make_model(gemini_server, db):
    """Build a GeminiModel on the test server, registered so its calls are recorded in `db`."""
    registry, _ = db

    def make(name: str = "gemini-2.5-flash", **kwargs) -> GeminiModel:
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("max_attempts", 3)
        model = GeminiModel(name, KEY, base_url=gemini_server.base_url, **kwargs)
        registry.register_model(model)
        return model

    return make


def expected_cost(name: str, input_tokens: int, output_tokens: int, cached: int) -> float:
    p = PRICES.get(name)
    assert p is not None and p.cached_input_per_million is not None, name
    return ((input_tokens - cached) * p.input_per_million + cached * p.cached_input_per_million
            + output_tokens * p.output_per_million) / 1e6


# --- usage and cost ---------------------------------------------------------------------------------

def test_usage_mapping_with_thinking_and_cached_tokens(gemini_server, make_model):
    gemini_server.enqueue(WireReply(text="Hi there", prompt_tokens=1000, candidates_tokens=50,
                                    thoughts_tokens=200, cached_tokens=600))
    result = make_model().generate("Say hi")
    assert result["response"] == "Hi there"
    assert result["input_tokens"] == 1000
    assert result["cached_tokens"] == 600
    assert result["thinking_tokens"] == 200
    assert result["output_tokens"] == 250  # candidates + thoughts
    assert result["tokens"] == 1250  # totalTokenCount
    # (400 x 0.30 + 600 x 0.03 + 250 x 2.50) / 1e6, thinking at the output rate, cached at the cached rate
    assert result["cost"] == pytest.approx((400 * 0.30 + 600 * 0.03 + 250 * 2.50) / 1e6, rel=1e-12)
    assert result["cost"] == pytest.approx(expected_cost("gemini-2.5-flash", 1000, 250, 600), rel=1e-12)
    assert result["finish_reason"] == "stop"
    assert result["provider"] == "gemini" and result["model"] == "gemini-2.5-flash"


def test_default_reply_counts_words_of_prompt_and_system(gemini_server, make_model):
    result = make_model().generate("one two three", system="be brief")
    assert result["response"] == "gemini says: one two three"
    assert result["input_tokens"] == 5
    assert result["output_tokens"] == 5
    assert result["tokens"] == 10


def test_request_body_carries_system_instruction_generation_config_and_key_header(gemini_server, make_model):
    make_model().generate("Say hi", system="You are terse.", temperature=0.2, max_tokens=64,
                          top_p=0.9, top_k=20, stop="END", seed=7)
    [request] = gemini_server.requests
    assert request["method"] == "POST"
    assert request["path"] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert request["headers"]["x-goog-api-key"] == KEY
    body = request["json"]
    assert body["contents"] == [{"parts": [{"text": "Say hi"}], "role": "user"}]
    assert body["systemInstruction"]["parts"] == [{"text": "You are terse."}]
    config = body["generationConfig"]
    assert config["maxOutputTokens"] == 64
    assert config["temperature"] == 0.2
    assert config["topP"] == 0.9 and config["topK"] == 20
    assert config["stopSequences"] == ["END"] and config["seed"] == 7


def test_count_tokens_asks_gemini(gemini_server, make_model):
    assert make_model().count_tokens("a b c d") == 4
    assert gemini_server.requests[-1]["path"].endswith(":countTokens")


def test_capabilities_and_limits():
    flash = GeminiModel("gemini-2.5-flash", KEY, base_url="http://127.0.0.1:9", timeout=1, max_attempts=1)
    old = GeminiModel("gemini-2.0-flash", KEY, base_url="http://127.0.0.1:9", timeout=1, max_attempts=1)
    assert flash.capabilities.streaming and flash.capabilities.system_prompt and flash.capabilities.thinking
    assert not old.capabilities.thinking
    assert flash.context_window == old.context_window == 1_048_576
    assert flash.max_output_tokens == 65_536 and old.max_output_tokens == 8_192
    assert flash.describe()["pricing"]["input_per_million"] == 0.30


# --- streaming ---------------------------------------------------------------------------------------

def test_stream_yields_chunks_and_takes_usage_from_the_last_chunk(gemini_server, make_model):
    gemini_server.enqueue(WireReply(chunks=["Hello", ", ", "world", "!"], prompt_tokens=12,
                                    candidates_tokens=9, thoughts_tokens=30, cached_tokens=4))
    stream = make_model().generate_stream("Greet me")
    chunks = list(stream)
    assert chunks == ["Hello", ", ", "world", "!"]
    result = stream.result
    assert result["response"] == "Hello, world!"
    assert (result["input_tokens"], result["output_tokens"], result["thinking_tokens"],
            result["cached_tokens"], result["tokens"]) == (12, 39, 30, 4, 51)
    assert result["cost"] == pytest.approx(expected_cost("gemini-2.5-flash", 12, 39, 4), rel=1e-12)
    assert result["ttft"] is not None and 0 < result["ttft"] <= result["latency"]
    assert gemini_server.requests[-1]["path"].endswith(":streamGenerateContent?alt=sse")


def test_stream_retries_before_the_first_chunk(gemini_server, make_model):
    gemini_server.enqueue(WireReply(status=429), WireReply(status=503), WireReply(text="ok then"))
    stream = make_model().generate_stream("go")
    assert "".join(stream) == "ok then"
    assert len(gemini_server.requests) == 3


def test_stream_error_after_first_chunk_is_not_retried(gemini_server, make_model, db):
    gemini_server.enqueue(WireReply(chunks=["partial"], stream_error=500))
    stream = make_model().generate_stream("go")
    received = []
    with pytest.raises(ProviderUnavailableError):
        for chunk in stream:
            received.append(chunk)
    assert received == ["partial"]
    assert len(gemini_server.requests) == 1
    [row] = db[1].list()
    assert row["status"] == "error" and row["response"] == "partial"


def test_stream_in_stream_error_before_first_chunk_is_retried(gemini_server, make_model):
    gemini_server.enqueue(WireReply(chunks=[], stream_error=503), WireReply(text="second try"))
    assert "".join(make_model().generate_stream("go")) == "second try"
    assert len(gemini_server.requests) == 2


@pytest.mark.parametrize("streaming", [False, True])
def test_a_blocked_prompt_is_an_answer_with_its_reason_not_a_cut_stream(gemini_server, make_model, db, streaming):
    gemini_server.enqueue(WireReply(block_reason="SAFETY", prompt_tokens=4, candidates_tokens=0))
    model = make_model()
    result = model.generate_stream("go").result if streaming else model.generate("go")
    assert (result["response"], result["finish_reason"], result["input_tokens"]) == ("", "safety", 4)
    assert len(gemini_server.requests) == 1  # not retried as a stream that closed before it began
    [row] = db[1].list()
    assert (row["status"], row["finish_reason"]) == ("success", "safety")


# --- retries and errors ------------------------------------------------------------------------------

def test_429_then_503_then_success(gemini_server, make_model, db):
    gemini_server.enqueue(WireReply(status=429), WireReply(status=503), WireReply(text="finally"))
    result = make_model().generate("hello")
    assert result["response"] == "finally" and result["status"] == "success"
    assert len(gemini_server.requests) == 3
    assert db[1].count() == 1


def test_no_retry_on_400(gemini_server, make_model, db):
    gemini_server.enqueue(WireReply(status=400, message="Invalid value at 'generation_config.temperature'"))
    with pytest.raises(InvalidRequestError) as info:
        make_model().generate("hello")
    assert len(gemini_server.requests) == 1
    assert info.value.provider_status == 400
    assert "Invalid value at 'generation_config.temperature'" in str(info.value)
    [row] = db[1].list()
    assert row["status"] == "error" and row["error_type"] == "invalid_request"


@pytest.mark.parametrize(("status", "error", "attempts"), [
    (401, ProviderAuthError, 1), (403, ProviderAuthError, 1), (404, InvalidRequestError, 1),
    (429, RateLimitedError, 3), (500, ProviderUnavailableError, 3), (503, ProviderUnavailableError, 3),
    (504, ProviderUnavailableError, 3), (408, ProviderTimeoutError, 3),
])
def test_error_mapping_and_which_codes_are_retried(gemini_server, make_model, status, error, attempts):
    gemini_server.enqueue(*[WireReply(status=status, message=f"provider says {status}")] * 3)
    with pytest.raises(error) as info:
        make_model().generate("hello")
    assert type(info.value) is error
    assert info.value.provider_status == status
    assert f"provider says {status}" in info.value.message
    assert len(gemini_server.requests) == attempts


def test_bad_key_is_an_auth_error(db):
    with GeminiWireServer(api_key="the-right-key") as server:
        model = GeminiModel("gemini-2.5-flash", KEY, base_url=server.base_url, timeout=5, max_attempts=3)
        db[0].register_model(model)
        with pytest.raises(ProviderAuthError, match="API key not valid"):
            model.generate("hello")
        assert len(server.requests) == 1


def test_timeout_is_retried_then_raises_provider_timeout(gemini_server, make_model, db):
    gemini_server.enqueue(*[WireReply(text="too late", delay=1.0)] * 3)
    with pytest.raises(ProviderTimeoutError, match="within 0.2s"):
        make_model(timeout=0.2, max_attempts=3).generate("hello")
    assert len(gemini_server.requests) == 3
    [row] = db[1].list()
    assert row["status"] == "error" and row["error_type"] == "provider_timeout"


def test_timeout_then_success(gemini_server, make_model):
    gemini_server.enqueue(WireReply(delay=1.0), WireReply(text="in time"))
    assert make_model(timeout=0.2).generate("hello")["response"] == "in time"
    assert len(gemini_server.requests) == 2


def test_stream_timeout_before_first_chunk_is_retried(gemini_server, make_model):
    gemini_server.enqueue(WireReply(delay=1.0), WireReply(text="streamed in time"))
    assert "".join(make_model(timeout=0.2).generate_stream("hello")) == "streamed in time"
    assert len(gemini_server.requests) == 2


def test_stream_timeout_after_first_chunk_is_not_retried(gemini_server, make_model):
    gemini_server.enqueue(WireReply(chunks=["first", " second"], chunk_delay=1.0))
    received = []
    with pytest.raises(ProviderTimeoutError):
        for chunk in make_model(timeout=0.2).generate_stream("hello"):
            received.append(chunk)
    assert received == ["first"]
    assert len(gemini_server.requests) == 1


def test_unreachable_server_is_unavailable():
    model = GeminiModel("gemini-2.5-flash", KEY, base_url="http://127.0.0.1:9", timeout=1, max_attempts=2)
    with pytest.raises(ProviderUnavailableError, match="Cannot reach Gemini"):
        next(model.execute(_request("hello"), _usage()))


# --- the key -----------------------------------------------------------------------------------------

def test_missing_key_names_both_variables(monkeypatch):
    settings = Settings.from_env(environ={}, env_file=None)
    with pytest.raises(MissingAPIKeyError) as info:
        GeminiModel("gemini-2.5-flash", settings=settings)
    assert "GEMINI_API_KEY" in str(info.value) and "GOOGLE_API_KEY" in str(info.value)


def test_key_from_settings_either_variable(gemini_server):
    for var in ("GEMINI_API_KEY", "GOOGLE_API_KEY"):
        settings = Settings.from_env(environ={}, env_file=None,
                                     overrides={var: KEY, "GEMINI_BASE_URL": gemini_server.base_url})
        GeminiModel.from_settings("gemini-2.5-flash", settings).count_tokens("a b")
        assert gemini_server.requests[-1]["headers"]["x-goog-api-key"] == KEY


def test_key_never_leaks_into_repr_errors_logs_or_database(gemini_server, make_model, db, caplog):
    caplog.set_level(logging.DEBUG)
    model = make_model(max_attempts=2)
    assert KEY not in repr(model) and KEY not in str(vars(model).get("_api_key"))
    gemini_server.enqueue(WireReply(status=503), WireReply(status=503), WireReply(status=400),
                          WireReply(delay=1.0), WireReply(delay=1.0))
    errors = []
    for call in (lambda: model.generate("a"), lambda: model.generate("b"),
                 lambda: make_model(timeout=0.1, max_attempts=2).generate("c")):
        with pytest.raises(Exception) as info:  # several error types on purpose
            call()
        errors.append(info.value)
    model.generate("d")
    for error in errors:
        assert KEY not in str(error) and KEY not in repr(error) and KEY not in json.dumps(error.details)
    assert KEY not in caplog.text
    assert "Retrying" in caplog.text or "retrying" in caplog.text  # the retry logs were captured
    rows = db[1].list()
    assert len(rows) == 4
    assert all(KEY not in json.dumps(row, default=str) for row in rows)


# --- exactly one row per call ------------------------------------------------------------------------

def test_one_request_log_row_per_call_including_failures(gemini_server, make_model, db):
    model = make_model()
    gemini_server.enqueue(WireReply(text="ok"), WireReply(status=400), WireReply(status=429),
                          WireReply(status=429), WireReply(status=429))
    model.generate("first")
    with pytest.raises(InvalidRequestError):
        model.generate("second")
    with pytest.raises(RateLimitedError):
        model.generate("third")
    "".join(model.generate_stream("fourth"))
    rows = db[1].list()
    assert [r["prompt"] for r in rows] == ["fourth", "third", "second", "first"]
    assert [r["status"] for r in rows] == ["success", "error", "error", "success"]
    assert [r["error_type"] for r in rows] == [None, "rate_limited", "invalid_request", None]
    assert rows[0]["stream"] is True and rows[0]["ttft"] is not None
    assert len({r["request_id"] for r in rows}) == 4


# --- through the HTTP API ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api_server():
    with GeminiWireServer() as server:
        yield server


@pytest.fixture(scope="module")
def api_app(api_server, tmp_path_factory):
    """One app for the API tests (building one runs the migrations, which is the slow part)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(retry_module, "RETRY_INITIAL_DELAY", 0.001)
        patch.setattr(retry_module, "RETRY_MAX_DELAY", 0.01)
        patch.setattr(retry_module, "RETRY_JITTER", 0.001)
        return create_app(Settings.from_env(environ={}, env_file=None, overrides={
            "DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('api') / 'api.db'}", "GEMINI_API_KEY": KEY,
            "GEMINI_BASE_URL": api_server.base_url, "GEMINI_TIMEOUT": "0.3", "GEMINI_MAX_ATTEMPTS": "3",
        }), {"TESTING": True})


@pytest.fixture
def api(api_app, api_server):
    """A client whose Gemini models start closed-circuit: the tests share one app, and their failures add up."""
    api_server.reset()
    registry = services(api_app).registry
    for name in registry.list_models():
        registry.call_path.breakers.reset(name)
    return api_app.test_client()


@pytest.fixture
def api_log(api_app):
    return services(api_app).request_log


def test_api_lists_gemini_models_with_pricing_and_default(api):
    body = api.get("/api/models").get_json()
    assert body["default"] == "gemini-2.5-flash"
    for name in ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash"):
        assert name in body["models"]
    flash = next(d for d in body["details"] if d["name"] == "gemini-2.5-flash")
    assert flash["provider"] == "gemini" and flash["capabilities"]["streaming"]
    assert flash["pricing"] == {"input_per_million": 0.30, "output_per_million": 2.50,
                                "cached_input_per_million": 0.03}


def test_api_generate_tokens_and_cost_match_usage_metadata(api, api_server):
    api_server.enqueue(WireReply(text="Hello!", prompt_tokens=300, candidates_tokens=20,
                                    thoughts_tokens=80, cached_tokens=100))
    response = api.post("/api/generate", json={"prompt": "Say hello", "model": "gemini-2.5-flash",
                                               "system": "Be kind", "max_tokens": 99})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "success" and body["response"] == "Hello!"
    assert (body["input_tokens"], body["output_tokens"], body["thinking_tokens"], body["cached_tokens"],
            body["tokens"]) == (300, 100, 80, 100, 400)
    assert body["cost"] == pytest.approx(expected_cost("gemini-2.5-flash", 300, 100, 100), rel=1e-12)
    sent = api_server.requests[-1]["json"]
    assert sent["generationConfig"]["maxOutputTokens"] == 99
    assert sent["systemInstruction"]["parts"] == [{"text": "Be kind"}]


def test_api_default_model_is_gemini(api, api_server):
    body = api.post("/api/generate", json={"prompt": "Say hello"}).get_json()
    assert body["model"] == "gemini-2.5-flash" and body["response"] == "gemini says: Say hello"


def test_api_stream_sends_deltas_then_done_with_usage(api, api_server):
    api_server.enqueue(WireReply(chunks=["a", "b", "c"], prompt_tokens=5, candidates_tokens=3,
                                    thoughts_tokens=2))
    response = api.post("/api/generate", json={"prompt": "abc", "model": "gemini-2.5-flash", "stream": True})
    assert response.mimetype == "text/event-stream"
    events = [json.loads(line[len("data: "):]) for line in response.get_data(as_text=True).split("\n\n") if line]
    assert [e["delta"] for e in events[:-1]] == ["a", "b", "c"]
    done = events[-1]
    assert done["done"] is True and done["status"] == "success"
    assert (done["input_tokens"], done["output_tokens"], done["thinking_tokens"], done["tokens"]) == (5, 5, 2, 10)
    assert done["cost"] == pytest.approx(expected_cost("gemini-2.5-flash", 5, 5, 0), rel=1e-12)
    assert done["ttft"] is not None


@pytest.mark.parametrize(("reply", "http_status", "code", "attempts"), [
    (WireReply(status=429), 429, "rate_limited", 3),
    (WireReply(status=503), 502, "provider_unavailable", 3),
    (WireReply(fault="reset"), 502, "provider_unavailable", 3),
    (WireReply(delay=1.0), 504, "provider_timeout", 3),
    (WireReply(status=400), 400, "invalid_request", 1),
    (WireReply(fault="not_json"), 502, "provider_error", 1),
])
def test_api_maps_exhausted_provider_failures(api, api_server, api_log, reply, http_status, code, attempts):
    api_server.enqueue(*[reply] * 3)
    response = api.post("/api/generate", json={"prompt": "hi", "model": "gemini-2.5-flash"})
    assert response.status_code == http_status
    assert response.get_json()["error"]["code"] == code
    assert KEY not in response.get_data(as_text=True)
    assert len(api_server.requests) == attempts
    [row] = api_log.list(1)
    assert row["status"] == "error" and row["error_type"] == code and row["source"] == "api"


def test_api_every_call_is_logged_once(api, api_server, api_log):
    before = api_log.count()
    api_server.enqueue(WireReply(text="fine"), *[WireReply(status=429)] * 3, *[WireReply(status=503)] * 3,
                          *[WireReply(delay=1.0)] * 3)
    statuses = [api.post("/api/generate", json={"prompt": f"call {i}", "model": "gemini-2.5-flash"}).status_code
                for i in range(4)]
    stream = api.post("/api/generate", json={"prompt": "call 4", "model": "gemini-2.5-flash", "stream": True})
    stream.get_data()
    assert statuses == [200, 429, 502, 504]
    rows = api.get("/api/requests?model=gemini-2.5-flash&limit=5").get_json()["requests"]
    assert [r["prompt"] for r in rows] == ["call 4", "call 3", "call 2", "call 1", "call 0"]
    assert api_log.count() == before + 5
    assert [r["status"] for r in rows] == ["success", "error", "error", "error", "success"]
    assert all(r["source"] == "api" for r in rows)
    assert KEY not in json.dumps(rows)


def _request(prompt: str):
    from models.messages import GenerationRequest

    return GenerationRequest.build(prompt)


def _usage():
    from models.results import Usage

    return Usage()
