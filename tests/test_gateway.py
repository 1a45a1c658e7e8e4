"""The OpenAI-compatible gateway, driven by the official `openai` SDK against the live app on 127.0.0.1, with the
OpenAI-compatible and Gemini wire-format servers and the local model behind it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import openai
import pytest
from flask import Flask
from pydantic import SecretStr
from werkzeug.serving import make_server

from api.app import create_app
from api.auth import create_key
from api.key_store import KeyPolicy
from api.services import api_keys, services
from core.settings import Settings
from tests.gemini_wire_server import GeminiWireServer
from tests.gemini_wire_server import WireReply as GeminiReply
from tests.openai_wire_server import OpenAIWireServer, WireReply

ADMIN = "gateway-admin-key"
UPSTREAM = "upstream"
EMBEDDER = "upstream-embedder"
WEATHER_TOOL: Any = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@dataclass
class Gateway:
    base_url: str
    app: Flask
    upstream: OpenAIWireServer
    gemini: GeminiWireServer

    def client(self, key: str = ADMIN, **options: Any) -> Any:
        """The official SDK's client, typed loosely: these tests send the SDK what a JSON client would."""
        return openai.OpenAI(base_url=self.base_url, api_key=key, **options)

    @property
    def log(self):
        return services(self.app).request_log


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("gateway")
    with OpenAIWireServer() as upstream, GeminiWireServer() as gemini:
        (tmp / "models.yaml").write_text(json.dumps({"models": [
            {"name": UPSTREAM, "provider": "openai_compatible", "base_url": upstream.base_url, "model": "fake-gpt",
             "pricing": {"input_per_million": 1.0, "output_per_million": 2.0}},
            {"name": EMBEDDER, "provider": "openai_compatible", "base_url": upstream.base_url, "kind": "embeddings",
             "model": "fake-embedding", "pricing": {"input_per_million": 0.02, "output_per_million": 0}}]}))
        settings = Settings.from_env(environ={}, env_file=None, overrides={
            "DATABASE_URL": f"sqlite:///{tmp / 'gateway.db'}", "MODELS_FILE": str(tmp / "models.yaml"),
            "GEMINI_API_KEY": "gemini-key", "GEMINI_BASE_URL": gemini.base_url, "GEMINI_MAX_ATTEMPTS": "1",
        }).model_copy(update={"api_keys": SecretStr(ADMIN)})
        app = create_app(settings)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield Gateway(f"http://127.0.0.1:{server.server_port}/v1", app, upstream, gemini)
        finally:
            server.shutdown()
            thread.join(5)


@pytest.fixture(autouse=True)
def fresh_servers(gateway: Gateway) -> None:
    gateway.upstream.reset()
    gateway.gemini.reset()


def test_plain_chat_is_one_recorded_call_with_usage_and_headers(gateway: Gateway) -> None:
    raw = gateway.client().chat.completions.with_raw_response.create(
        model=UPSTREAM, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hi"}],
        max_tokens=16, temperature=0.2, user="ana")
    reply = raw.parse()
    assert reply.choices[0].message.content == "openai says: Say hi" and reply.choices[0].finish_reason == "stop"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens) == (4, 4)
    assert reply.model == UPSTREAM and reply.id.startswith("chatcmpl-")
    row = gateway.log.get(reply.id.removeprefix("chatcmpl-"))
    assert (row["status"], row["user_id"], row["api_key_id"], row["cost"]) == ("success", "ana", row["api_key_id"],
                                                                               pytest.approx(12e-6))
    assert row["api_key_id"].startswith("env_")  # the key's id, never the key
    assert raw.headers["X-Model"] == UPSTREAM and float(raw.headers["X-Cost-USD"]) == pytest.approx(12e-6)
    assert float(raw.headers["X-Gateway-Overhead-Ms"]) >= 0 and raw.headers["X-Request-ID"]
    [sent] = gateway.upstream.completions()
    assert (sent["temperature"], sent["max_tokens"]) == (0.2, 16)


def test_stream_with_usage_matches_the_recorded_call(gateway: Gateway) -> None:
    gateway.upstream.enqueue(WireReply(chunks=["Hello", " wide", " world"], prompt_tokens=7, completion_tokens=3))
    stream = gateway.client().chat.completions.create(
        model=UPSTREAM, messages=[{"role": "user", "content": "Greet"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello wide world"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert chunks[-1].choices == [] and (usage.prompt_tokens, usage.completion_tokens) == (7, 3)
    row = gateway.log.get(chunks[0].id.removeprefix("chatcmpl-"))
    assert (row["stream"], row["input_tokens"], row["output_tokens"]) == (True, 7, 3)


def test_a_stream_without_include_usage_is_still_recorded_with_usage(gateway: Gateway) -> None:
    gateway.upstream.enqueue(WireReply(text="a b", prompt_tokens=5, completion_tokens=2))
    chunks = list(gateway.client().chat.completions.create(
        model=UPSTREAM, messages=[{"role": "user", "content": "x"}], stream=True))
    assert all(c.usage is None for c in chunks)
    row = gateway.log.get(chunks[0].id.removeprefix("chatcmpl-"))
    assert (row["input_tokens"], row["output_tokens"]) == (5, 2)


@pytest.mark.parametrize("stream", [False, True])
def test_a_tool_call_round_trip(gateway: Gateway, stream: bool) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
    gateway.upstream.enqueue(WireReply(tool_calls=[call]), WireReply(text="It is sunny in Oslo."))
    client = gateway.client()
    question = [{"role": "user", "content": "Weather in Oslo?"}]
    first = client.chat.completions.create(model=UPSTREAM, messages=question, tools=[WEATHER_TOOL],
                                           tool_choice="auto", stream=stream)
    if stream:
        chunks = list(first)
        [delta_call] = [c for chunk in chunks if chunk.choices for c in chunk.choices[0].delta.tool_calls or ()]
        asked, finish = (delta_call.id, delta_call.function.name, delta_call.function.arguments), \
            [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        message = first.choices[0].message
        [tool_call] = message.tool_calls
        asked = (tool_call.id, tool_call.function.name, tool_call.function.arguments)
        finish = first.choices[0].finish_reason
    assert asked == ("call_1", "get_weather", '{"city":"Oslo"}') and finish == "tool_calls"
    answer = client.chat.completions.create(model=UPSTREAM, tools=[WEATHER_TOOL], messages=[
        *question, {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"sky": "sunny"}'}])
    assert answer.choices[0].message.content == "It is sunny in Oslo."
    sent = gateway.upstream.completions()
    assert sent[0]["tools"] == [WEATHER_TOOL] and sent[0]["tool_choice"] == "auto"
    assert sent[1]["messages"][1:] == [{"role": "assistant", "tool_calls": [call]},
                                       {"role": "tool", "content": '{"sky": "sunny"}', "tool_call_id": "call_1"}]


def test_gemini_gets_function_declarations_and_answers_tool_calls(gateway: Gateway) -> None:
    gateway.gemini.enqueue(GeminiReply(function_calls=[{"name": "get_weather", "args": {"city": "Oslo"}}]))
    reply = gateway.client().chat.completions.create(
        model="gemini-2.5-flash", messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}})
    [tool_call] = reply.choices[0].message.tool_calls
    assert (tool_call.function.name, json.loads(tool_call.function.arguments)) == ("get_weather", {"city": "Oslo"})
    assert reply.choices[0].finish_reason == "tool_calls"
    [body] = [r["json"] for r in gateway.gemini.requests_for("generateContent")]
    declaration = body["tools"][0]["functionDeclarations"][0]  # the SDK sends some nested keys in snake_case
    assert declaration["name"] == "get_weather" and declaration["parameters_json_schema"]["required"] == ["city"]
    assert body["toolConfig"]["functionCallingConfig"] == {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}


def test_json_mode_reaches_both_providers(gateway: Gateway) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}}
    gateway.upstream.enqueue(WireReply(text='{"ok": true}'))
    reply = gateway.client().chat.completions.create(
        model=UPSTREAM, messages=[{"role": "user", "content": "json please"}],
        response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})
    assert json.loads(reply.choices[0].message.content) == {"ok": True}
    assert gateway.upstream.completions()[0]["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
    gateway.client().chat.completions.create(model="gemini-2.5-flash", messages=[{"role": "user", "content": "x"}],
                                             response_format={"type": "json_object"})
    config = gateway.gemini.requests_for("generateContent")[0]["json"]["generationConfig"]
    assert config["responseMimeType"] == "application/json"


def test_models_are_listed_in_openai_format(gateway: Gateway) -> None:
    models = {model.id: model.owned_by for model in gateway.client().models.list()}
    assert models[UPSTREAM] == "openai_compatible" and models["gemini-2.5-flash"] == "gemini"
    assert models["smollm2-135m-instruct"] == "local"


@pytest.mark.local_model
def test_the_local_model_answers_through_the_gateway(gateway: Gateway) -> None:
    reply = gateway.client().chat.completions.create(
        model="local", messages=[{"role": "user", "content": "Say hi"}], max_tokens=4, temperature=0)
    assert reply.model == "smollm2-135m-instruct" and 0 < reply.usage.completion_tokens <= 4
    with pytest.raises(openai.BadRequestError) as refused:  # it has no tools, and says so before any work
        gateway.client().chat.completions.create(model="local", messages=[{"role": "user", "content": "x"}],
                                                 tools=[WEATHER_TOOL])
    assert refused.value.code == "unsupported_parameter" and refused.value.param == "tools"


@pytest.mark.parametrize(("kwargs", "error", "code", "param"), [
    ({"model": UPSTREAM, "surprise": 1}, openai.BadRequestError, "validation_error", "surprise"),
    ({"model": UPSTREAM, "n": 2}, openai.BadRequestError, "validation_error", "n"),
    ({"model": UPSTREAM, "temperature": 5}, openai.BadRequestError, "validation_error", "temperature"),
    ({"model": "no-such-model"}, openai.NotFoundError, "unknown_model", None),
])
def test_client_mistakes_raise_the_sdks_classes(gateway: Gateway, kwargs: dict, error: type[openai.APIStatusError],
                                                code: str, param: str | None) -> None:
    extra = {"surprise": kwargs.pop("surprise")} if "surprise" in kwargs else {}
    with pytest.raises(error) as raised:
        gateway.client(max_retries=0).chat.completions.create(
            messages=[{"role": "user", "content": "x"}], extra_body=extra, **kwargs)
    assert raised.value.code == code and raised.value.param == param
    assert gateway.upstream.completions() == []


def test_a_bad_key_is_an_authentication_error(gateway: Gateway) -> None:
    with pytest.raises(openai.AuthenticationError) as raised:
        gateway.client("not-a-key").chat.completions.create(model=UPSTREAM, messages=[{"role": "user", "content": "x"}])
    assert raised.value.code == "invalid_api_key"


def test_an_upstream_rate_limit_is_a_rate_limit_error(gateway: Gateway) -> None:
    gateway.upstream.enqueue(*[WireReply(status=429)] * 4)
    with pytest.raises(openai.RateLimitError):
        gateway.client(max_retries=0).chat.completions.create(
            model=UPSTREAM, messages=[{"role": "user", "content": "x"}])


def test_a_per_key_hard_budget_refuses_at_once_without_sdk_retries(gateway: Gateway) -> None:
    key_id, key = create_key(api_keys(gateway.app), "team")
    services(gateway.app).budgets.create(_hard_budget(key_id), owner=key_id)
    with pytest.raises(openai.APIStatusError) as refused:
        gateway.client(key).chat.completions.create(model=UPSTREAM, messages=[{"role": "user", "content": "x y"}])
    assert refused.value.status_code == 402 and refused.value.code == "budget_exceeded"
    rows = [r for r in gateway.log.list(api_key_id=key_id)]
    assert [r["status"] for r in rows] == ["rejected"]  # one attempt: the SDK did not retry a 402
    assert gateway.upstream.completions() == []
    other = gateway.client().chat.completions.create(model=UPSTREAM, messages=[{"role": "user", "content": "x"}])
    assert other.choices[0].message.content  # the admin key has no such budget


def _hard_budget(key_id: str):
    from monitoring.budgets import BudgetSpec

    return BudgetSpec(name=f"cap-{key_id}", scope="api_key", target=key_id, period="daily", limit_usd=1e-9,
                      hard_limit=True)


def test_experiment_model_assigns_sticky_variants_and_takes_feedback(gateway: Gateway) -> None:
    svc = services(gateway.app)
    experiment_id = svc.experiments.create_experiment({
        "name": "tone", "start": True, "control": "terse",
        "variants": [{"name": "terse", "model": UPSTREAM, "params": {"system": "Answer tersely.", "max_tokens": 8}},
                     {"name": "warm", "model": UPSTREAM, "params": {"system": "Answer warmly.", "max_tokens": 8}}]})
    client = gateway.client()
    served: dict[str, set[str]] = {}
    ids = []
    for user in ("ana", "ben", "chen", "dev", "eve", "fay") * 2:
        reply = client.chat.completions.create(model="experiment:tone", user=user,
                                               messages=[{"role": "system", "content": "ignored"},
                                                         {"role": "user", "content": "Hi"}])
        sent = gateway.upstream.completions()[-1]
        served.setdefault(user, set()).add(sent["messages"][0]["content"])
        assert sent["max_tokens"] == 8 and len(sent["messages"]) == 2  # the variant's system replaced the client's
        ids.append(reply.id)
    assert all(len(systems) == 1 for systems in served.values())  # sticky by user
    for response_id in ids[:6]:
        assert client.post("/../api/feedback", cast_to=object, body={"request_id": response_id,
                                                                      "success": True, "rating": 4})
    again = client.post("/../api/feedback", cast_to=object, body={"request_id": ids[0], "success": True})
    assert again["duplicate"] is True  # idempotent per call
    stats = svc.experiments.get_experiment_stats(experiment_id)
    assert stats is not None
    summaries = {v["name"]: v for v in stats["variants"]}
    assert sum(v["n"] for v in summaries.values()) == 6 and sum(v["successes"] for v in summaries.values()) == 6
    assert all(v["latency"]["n"] and v["cost"]["mean"] > 0 for v in summaries.values() if v["exposures"])
    assert sum(v["exposures"] for v in summaries.values()) == 12  # every call, with its latency and cost


@pytest.mark.parametrize("encoding", ["base64", "float"])  # the SDK asks for base64 unless told otherwise
def test_embeddings_through_the_sdk_are_recorded_and_priced(gateway: Gateway, encoding: str) -> None:
    kwargs = {} if encoding == "base64" else {"encoding_format": "float"}
    reply = gateway.client().embeddings.create(model=EMBEDDER, input=["a cat", "a dog sat"], **kwargs)
    assert [item.index for item in reply.data] == [0, 1] and len(reply.data[0].embedding) > 1
    sent = [r["json"] for r in gateway.upstream.requests if r["path"].endswith("/embeddings")][-1]
    assert sent["input"] == ["a cat", "a dog sat"] and sent["model"] == "fake-embedding"
    [row] = gateway.log.list(1, operation="embeddings")
    assert (row["model"], row["input_tokens"], row["status"]) == (EMBEDDER, reply.usage.prompt_tokens, "success")
    assert row["cost"] == pytest.approx(reply.usage.prompt_tokens * 0.02 / 1e6)


def test_gemini_embeddings_and_a_chat_model_that_cannot_embed(gateway: Gateway) -> None:
    reply = gateway.client().embeddings.create(model="gemini-embedding-001", input="hello world")
    assert len(reply.data) == 1 and reply.data[0].embedding
    assert gateway.gemini.requests_for("batchEmbedContents")
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.client().embeddings.create(model=UPSTREAM, input="x")
    assert refused.value.code == "embeddings_not_supported"


def _managed_key(gateway: Gateway, **policy: Any) -> str:
    response = gateway.client().post("/../api/keys", cast_to=object, body={"name": "app", **policy})
    return response["key"]


def test_a_keys_allow_list_is_a_permission_error(gateway: Gateway) -> None:
    key = _managed_key(gateway, models=["gemini-2.5-flash"])
    with pytest.raises(openai.PermissionDeniedError) as refused:
        gateway.client(key, max_retries=0).chat.completions.create(
            model=UPSTREAM, messages=[{"role": "user", "content": "x"}])
    assert refused.value.code == "model_not_allowed"
    assert gateway.upstream.completions() == []


def test_a_keys_rpm_is_a_rate_limit_error_with_retry_after(gateway: Gateway) -> None:
    key = _managed_key(gateway, rpm=2)
    client = gateway.client(key, max_retries=0)
    for _ in range(2):
        client.chat.completions.create(model=UPSTREAM, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(model=UPSTREAM, messages=[{"role": "user", "content": "x"}], stream=True)
    assert limited.value.code == "rate_limited" and 0 < int(limited.value.response.headers["Retry-After"]) <= 60
    assert len(gateway.upstream.completions()) == 2  # refused before the provider, and before any event


def test_expired_and_revoked_keys_are_authentication_errors(gateway: Gateway) -> None:
    admin = gateway.client()
    created = admin.post("/../api/keys", cast_to=object, body={"name": "short-lived"})
    client = gateway.client(created["key"], max_retries=0)
    assert client.chat.completions.create(model=UPSTREAM, messages=[{"role": "user", "content": "x"}])
    admin.delete(f"/../api/keys/{created['id']}", cast_to=object)
    with pytest.raises(openai.AuthenticationError) as revoked:
        client.chat.completions.create(model=UPSTREAM, messages=[{"role": "user", "content": "x"}])
    assert revoked.value.code == "invalid_api_key"
    _, expired_key = create_key(api_keys(gateway.app), "expired",  # straight to the store: the API refuses a past date
                                policy=KeyPolicy(expires_at=datetime(2020, 1, 1)))
    with pytest.raises(openai.AuthenticationError) as expired:
        gateway.client(expired_key, max_retries=0).models.list()
    assert expired.value.code == "api_key_expired"


def test_tags_from_metadata_the_header_and_the_key_reach_the_request_log(gateway: Gateway) -> None:
    key = _managed_key(gateway, metadata={"tags": ["team-a"]})
    reply = gateway.client(key, default_headers={"X-Tags": "from-header"}).chat.completions.create(
        model=UPSTREAM, messages=[{"role": "user", "content": "x"}], metadata={"tags": "release"})
    row = gateway.log.get(reply.id.removeprefix("chatcmpl-"))
    assert row["tags"] == ["release", "from-header", "team-a"]
