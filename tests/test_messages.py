"""Conversations: `/api/generate` takes `messages`, and each provider receives the roles natively."""

from __future__ import annotations

import textwrap

import pytest

from api.app import create_app
from api.services import services
from core.settings import Settings
from models.messages import GenerationRequest
from tests.gemini_wire_server import GeminiWireServer
from tests.openai_wire_server import OpenAIWireServer

CONVERSATION = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "My name is Ada."},
    {"role": "assistant", "content": "Hello Ada."},
    {"role": "user", "content": "What is my name?"},
]


@pytest.fixture
def servers():
    with GeminiWireServer() as gemini, OpenAIWireServer() as openai:
        yield gemini, openai


@pytest.fixture
def gateway(tmp_path, servers):
    """The app with the local model, Gemini on its wire-format server and an OpenAI-compatible upstream."""
    gemini, openai = servers
    models_file = tmp_path / "models.yaml"
    models_file.write_text(textwrap.dedent(f"""\
        models:
          - name: upstream
            provider: openai_compatible
            base_url: {openai.base_url}
            model: fake-gpt
        """))
    settings = Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'messages.db'}", "GEMINI_API_KEY": "gemini-key",
        "GEMINI_BASE_URL": gemini.base_url, "MODELS_FILE": str(models_file)})
    return create_app(settings, {"TESTING": True}).test_client()


def _generate(client, model: str, **body):
    response = client.post("/api/generate", json={"model": model, "messages": CONVERSATION, **body})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_gemini_receives_user_and_model_turns_and_the_system_instruction(gateway, servers):
    gemini, _ = servers
    result = _generate(gateway, "gemini-2.5-flash")
    [request] = gemini.requests_for("generateContent")
    body = request["json"]
    assert [(c["role"], c["parts"][0]["text"]) for c in body["contents"]] == [
        ("user", "My name is Ada."), ("model", "Hello Ada."), ("user", "What is my name?")]
    assert body["systemInstruction"]["parts"][0]["text"] == "You are terse."
    assert result["response"].startswith("gemini says:")
    assert gemini.requests_for("countTokens") == []  # counting the context needed no round trip


def test_openai_compatible_upstream_receives_the_messages_as_they_are(gateway, servers):
    _, openai = servers
    result = _generate(gateway, "upstream")
    assert openai.requests[-1]["json"]["messages"] == CONVERSATION
    assert result["response"] == "openai says: What is my name?"


@pytest.mark.local_model
def test_local_model_answers_the_conversation_through_its_chat_template(gateway):
    result = _generate(gateway, "local", max_tokens=8, temperature=0)
    assert result["status"] == "success" and result["output_tokens"] <= 8
    model = services(gateway.application).registry.get_model("local")
    request = GenerationRequest.build(messages=CONVERSATION)
    # Exactly the template's tokens: the recorded input is the whole conversation, not its last turn.
    assert result["input_tokens"] == model.count_input_tokens(request) > model.count_tokens("What is my name?") + 20


def test_the_request_log_keeps_the_conversation(gateway):
    result = _generate(gateway, "upstream")
    row = services(gateway.application).request_log.get(result["request_id"])
    assert row["messages"] == CONVERSATION and row["prompt"] == "What is my name?"


def test_a_prompt_alone_is_stored_once(gateway):
    response = gateway.post("/api/generate", json={"model": "upstream", "prompt": "Hi"}).get_json()
    row = services(gateway.application).request_log.get(response["request_id"])
    assert (row["prompt"], row["messages"]) == ("Hi", None)


@pytest.mark.parametrize(("body", "field"), [
    ({}, "prompt"),
    ({"prompt": "x", "messages": CONVERSATION}, "prompt"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user"}]}, "messages.0"),  # content is required (save for tool calls)
    ({"messages": [{"role": "user", "content": "x", "name": "y"}]}, "messages.0.name"),
])
def test_prompt_or_messages_exactly_one_and_valid(client, fake_model, body, field):
    response = client.post("/api/generate", json=body)
    assert response.status_code == 400
    assert field in [f["field"] for f in response.get_json()["error"]["details"]["fields"]]
    assert fake_model.calls == []


def test_a_conversation_of_only_system_messages_is_refused(client, fake_model):
    response = client.post("/api/generate", json={"messages": [{"role": "system", "content": "x"}]})
    assert response.status_code == 400 and "user or assistant" in response.get_json()["error"]["message"]


def test_library_generate_takes_messages_too(svc, fake_model):
    result = svc.registry.get_model("fake").generate(messages=CONVERSATION)
    [request] = fake_model.calls
    assert request.messages[1].content == "My name is Ada." and request.system == "You are terse."
    assert result["input_tokens"] == sum(len(m["content"].split()) for m in CONVERSATION)
    with pytest.raises(ValueError, match="exactly one"):
        svc.registry.get_model("fake").generate("x", messages=CONVERSATION)
