"""AzureOpenAIModel with the real `openai` SDK against the wire-format server in Azure's URL layout
(`/openai/deployments/{deployment}/chat/completions?api-version=...`, key in `api-key`), and through the HTTP API."""

from __future__ import annotations

import json
import logging
import traceback
from urllib.parse import parse_qs, urlsplit

import pytest

from api.app import create_app
from core.settings import Settings
from models.azure_openai import AzureOpenAIModel
from models.errors import ProviderAuthError
from models.model_registry import ModelRegistry
from models.pricing import ModelPricing, PricingTable
from models.request_log import RequestLogRepository
from models.retry import RetryPolicy
from tests.openai_wire_server import OpenAIWireServer, WireReply

KEY = "azure-secret-key-0123456789abcdef"
DEPLOYMENT = "gpt4o-prod"
API_VERSION = "2024-10-21"
PRICING = ModelPricing(input_per_million=2.5, output_per_million=10.0, cached_input_per_million=1.25)
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}


@pytest.fixture
def server():
    with OpenAIWireServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def registry(sqlite_url):
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": sqlite_url})
    registry = ModelRegistry(sqlite_url, settings=settings, pricing=PricingTable({}), register_defaults=False)
    yield registry
    registry.engine.dispose()


@pytest.fixture
def make_model(server, registry):
    def make(**kwargs) -> AzureOpenAIModel:
        kwargs.setdefault("api_key", KEY)
        model = AzureOpenAIModel("azure-gpt", base_url=server.azure_endpoint, deployment=DEPLOYMENT,
                                 api_version=API_VERSION, model="gpt-4o", pricing=PRICING, timeout=5.0,
                                 retry=RetryPolicy(attempts=2, initial_delay=0.001, max_delay=0.01), **kwargs)
        registry.register_model(model)
        return model

    return make


def assert_azure_request(request: dict) -> None:
    """Exactly Azure's layout: the deployment's path, the api-version query, the key in `api-key` (no bearer)."""
    url = urlsplit(request["path"])
    assert url.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert parse_qs(url.query) == {"api-version": [API_VERSION]}
    assert request["headers"]["api-key"] == KEY and "authorization" not in request["headers"]


def test_plain_call_uses_azures_url_layout_and_key_header(server, make_model):
    server.enqueue(WireReply(text="Hello from Azure", prompt_tokens=1000, completion_tokens=100, cached_tokens=400))
    result = make_model().generate("hi", max_tokens=50)
    [request] = server.requests
    assert_azure_request(request)
    assert request["json"]["messages"] == [{"role": "user", "content": "hi"}] and request["json"]["max_tokens"] == 50
    assert (result["response"], result["provider"], result["model"]) == ("Hello from Azure", "azure_openai",
                                                                         "azure-gpt")
    assert (result["input_tokens"], result["cached_tokens"], result["output_tokens"]) == (1000, 400, 100)
    assert result["cost"] == pytest.approx((600 * 2.5 + 400 * 1.25 + 100 * 10.0) / 1e6)


def test_stream_uses_azures_url_layout_and_reads_the_final_usage(server, make_model):
    server.enqueue(WireReply(chunks=["Hello", " Azure"], prompt_tokens=12, completion_tokens=7))
    stream = make_model().generate_stream("hi")
    assert list(stream) == ["Hello", " Azure"]
    assert (stream.result["input_tokens"], stream.result["output_tokens"]) == (12, 7)
    [request] = server.requests
    assert_azure_request(request)
    assert request["json"]["stream"] is True and request["json"]["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("streaming", [False, True])
def test_tool_calls_travel_both_ways(server, make_model, streaming):
    server.enqueue(WireReply(tool_calls=[CALL]))
    model = make_model()
    call = model.generate_stream if streaming else model.generate
    asked = call("Weather in Oslo?", tools=[WEATHER_TOOL], tool_choice="auto")
    result = asked.result if streaming else asked
    assert result["tool_calls"] == [CALL] and result["finish_reason"] == "tool_calls"
    [request] = server.requests
    assert_azure_request(request)
    assert request["json"]["tools"] == [WEATHER_TOOL] and request["json"]["tool_choice"] == "auto"


def test_the_key_never_reaches_errors_logs_repr_or_the_request_log(make_model, registry, caplog):
    with OpenAIWireServer(api_key="the-right-key") as strict:  # its 401 echoes the key it was sent
        model = make_model()
        model.base_url = strict.azure_endpoint
        with caplog.at_level(logging.DEBUG), pytest.raises(ProviderAuthError) as caught:
            model.generate("hi")
        assert strict.requests[0]["headers"]["api-key"] == KEY  # it was sent...
    error = caught.value
    assert "Incorrect API key provided: [redacted]" in str(error)
    assert KEY not in str(error) and KEY not in repr(error.details)  # ...and never repeated
    assert KEY not in "".join(traceback.format_exception(error))
    assert any(record.name.startswith("openai") for record in caplog.records)  # the SDK's debug log was seen
    assert KEY not in caplog.text and KEY not in repr(model)
    [row] = RequestLogRepository(registry.engine).list()
    assert row["error_type"] == "provider_auth_error" and KEY not in repr(row)


# --- through the HTTP API, from a models.yaml ------------------------------------------------------------

def test_a_declared_azure_model_answers_api_generate_and_v1_chat_completions(tmp_path, server):
    (tmp_path / "models.yaml").write_text(json.dumps({"models": [{
        "name": "azure-gpt", "provider": "azure_openai", "base_url": server.azure_endpoint,
        "deployment": DEPLOYMENT, "api_version": API_VERSION, "api_key_env": "AZURE_KEY", "model": "gpt-4o-mini"}]}))
    settings = Settings.from_env(environ={"AZURE_KEY": KEY}, env_file=None, overrides={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'azure.db'}", "MODELS_FILE": str(tmp_path / "models.yaml")})
    client = create_app(settings, {"TESTING": True}).test_client()
    server.enqueue(WireReply(text="generated", prompt_tokens=1000, completion_tokens=100),
                   WireReply(text="completed", prompt_tokens=1000, completion_tokens=100))

    body = client.post("/api/generate", json={"prompt": "hello", "model": "azure-gpt"}).get_json()
    assert (body["status"], body["response"], body["provider"]) == ("success", "generated", "azure_openai")
    assert body["cost"] == pytest.approx((1000 * 0.15 + 100 * 0.60) / 1e6)  # gpt-4o-mini's built-in price

    reply = client.post("/v1/chat/completions", json={
        "model": "azure-gpt", "messages": [{"role": "user", "content": "hello"}]}).get_json()
    assert reply["choices"][0]["message"]["content"] == "completed" and reply["usage"]["prompt_tokens"] == 1000
    assert len(server.requests) == 2
    for request in server.requests:
        assert_azure_request(request)
    listed = {d["name"]: d for d in client.get("/api/models").get_json()["details"]}
    assert listed["azure-gpt"]["provider"] == "azure_openai"
    assert KEY not in json.dumps(listed) and KEY not in json.dumps(client.get("/api/requests").get_json())
