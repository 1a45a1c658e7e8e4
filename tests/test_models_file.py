"""The models file: validation that names file, entry and field; registration; and a declared model over HTTP."""

from __future__ import annotations

import json
import textwrap

import pytest

from api.app import create_app
from api.services import services
from core.settings import Settings, SettingsError
from models.errors import MissingAPIKeyError
from models.models_file import ModelsFileError, load_models_file
from models.openai_compatible import OpenAICompatibleModel
from tests.openai_wire_server import OpenAIWireServer, WireReply

KEY = "sk-upstream-secret-0123456789"
VALID = """\
models:
  - name: fast-upstream            # the name clients use
    provider: openai_compatible
    base_url: {base_url}
    model: fake-gpt                # the upstream's own model id
    api_key_env: UPSTREAM_KEY      # optional; the key is read from this variable
    pricing: {{input_per_million: 0.15, output_per_million: 0.6, cached_input_per_million: 0.075}}
    aliases: [fast]
"""
SECOND = """\
  - name: other
    provider: openai_compatible
    base_url: http://127.0.0.1:9/v1
"""


@pytest.fixture
def server():
    with OpenAIWireServer(api_key=KEY) as server:
        yield server


def write(tmp_path, text: str) -> str:
    path = tmp_path / "models.yaml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def settings_for(tmp_path, models_file: str, **environ: str) -> Settings:
    return Settings.from_env(environ=environ, env_file=None, overrides={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'models_file.db'}", "MODELS_FILE": models_file})


# --- a valid file -----------------------------------------------------------------------------------

def test_valid_file_registers_the_model_with_aliases_pricing_and_key(tmp_path, server):
    settings = settings_for(tmp_path, write(tmp_path, VALID.format(base_url=server.base_url)), UPSTREAM_KEY=KEY)
    registry = services(create_app(settings)).registry
    model = registry.get_model("fast")
    assert isinstance(model, OpenAICompatibleModel)
    assert (model.name, model.upstream_model, model.base_url) == ("fast-upstream", "fake-gpt", server.base_url)
    assert registry.aliases_of("fast-upstream") == ["fast"]
    assert model.pricing.summary() == {"input_per_million": 0.15, "output_per_million": 0.6,
                                       "cached_input_per_million": 0.075}
    assert "smollm2-135m-instruct" in registry.list_models()  # the built-ins are still there
    assert model.generate("hi")["response"] == "openai says: hi"
    assert server.requests[-1]["headers"]["authorization"] == f"Bearer {KEY}"  # read via api_key_env


def test_optional_fields_default_and_model_defaults_to_name(tmp_path):
    [entry] = load_models_file(write(tmp_path, "models:\n" + SECOND)).models
    assert (entry.model, entry.api_key_env, entry.pricing, entry.aliases) == (None, None, None, [])
    assert (entry.timeout, entry.max_attempts) == (60.0, 4)


def test_unset_api_key_env_registers_the_model_but_calls_say_which_variable(tmp_path, server):
    settings = settings_for(tmp_path, write(tmp_path, VALID.format(base_url=server.base_url)))
    model = services(create_app(settings)).registry.get_model("fast")
    with pytest.raises(MissingAPIKeyError, match="UPSTREAM_KEY"):
        model.generate("hi")
    assert server.requests == []


def test_the_key_variable_may_come_from_dotenv(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text(f"UPSTREAM_KEY={KEY}\n")
    assert Settings.from_env(environ={}, env_file=str(env_file)).env_value("UPSTREAM_KEY") == KEY
    assert Settings.from_env(environ={"UPSTREAM_KEY": ""}, env_file=None).env_value("UPSTREAM_KEY") is None


def test_models_yaml_in_the_working_directory_is_the_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MODELS_FILE", raising=False)
    assert Settings.from_env(env_file=None).models_file is None
    write(tmp_path, "models: []\n")
    assert Settings.from_env(env_file=None).models_file == str(tmp_path / "models.yaml")
    assert Settings.from_env(environ={}, env_file=None).models_file is None  # an explicit environment is all


# --- invalid files ----------------------------------------------------------------------------------

ENTRY = "  - name: broken\n    provider: openai_compatible\n    base_url: http://127.0.0.1:8001/v1\n"


@pytest.mark.parametrize(("second", "where", "field", "why"), [
    (ENTRY.replace("    base_url: http://127.0.0.1:8001/v1\n", ""), "models[1] (name 'broken')", "base_url",
     "Field required"),
    (ENTRY.replace("openai_compatible", "anthropic"), "models[1] (name 'broken')", "provider",
     "Input should be 'openai_compatible'"),
    (ENTRY + "    pricing: {input_per_million: -1, output_per_million: 0.6}\n", "models[1] (name 'broken')",
     "pricing.input_per_million", "greater than or equal to 0"),
    (ENTRY + "    pricing: {input_per_million: cheap, output_per_million: 0.6}\n", "models[1] (name 'broken')",
     "pricing.input_per_million", "valid number"),
    (ENTRY.replace("broken", "other"), "models[1] (name 'other')", "name", "already declared by models[0]"),
    (ENTRY + "    aliases: [other]\n", "models[1] (name 'broken')", "aliases", "'other' is already declared"),
    (ENTRY.replace("http://127.0.0.1:8001/v1", "127.0.0.1:8001"), "models[1] (name 'broken')", "base_url",
     "http:// or https://"),
    (ENTRY + "    api_key_env: not a variable\n", "models[1] (name 'broken')", "api_key_env", "should match"),
    (ENTRY + "    max_attempts: 0\n", "models[1] (name 'broken')", "max_attempts", "greater than or equal to 1"),
    ("  - provider: openai_compatible\n    base_url: http://h/v1\n", "models[1] (no name)", "name",
     "Field required"),
])
def test_invalid_entries_name_the_file_the_entry_and_the_field(tmp_path, second, where, field, why):
    path = write(tmp_path, "models:\n" + SECOND + second)
    with pytest.raises(ModelsFileError) as caught:
        load_models_file(path)
    message = str(caught.value)
    assert path in message and f"{where}: field '{field}'" in message and why in message, message


def test_a_key_written_into_the_file_is_rejected_without_being_repeated(tmp_path):
    path = write(tmp_path, "models:\n" + ENTRY + f"    api_key: {KEY}\n")
    with pytest.raises(ModelsFileError) as caught:
        load_models_file(path)
    assert "models[0] (name 'broken'): field 'api_key': Extra inputs are not permitted" in str(caught.value)
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(("text", "why"), [
    ("models: [\n", "is not valid YAML"),
    ("- just a list\n", "expected a mapping with 'models' and/or 'groups' lists"),
    ("", "expected a mapping with 'models' and/or 'groups' lists"),
    ("models: {}\n", "top level: field 'models': Input should be a valid list"),
    ("models: []\nextra: 1\n", "top level: field 'extra': Extra inputs are not permitted"),
])
def test_malformed_files_name_the_file(tmp_path, text, why):
    path = write(tmp_path, text)
    with pytest.raises(ModelsFileError, match=why) as caught:
        load_models_file(path)
    assert path in str(caught.value)


def test_an_invalid_or_missing_file_stops_start_up(tmp_path):
    bad = write(tmp_path, "models:\n" + ENTRY.replace("openai_compatible", "nope"))
    with pytest.raises(SettingsError, match=r"models\[0\] \(name 'broken'\): field 'provider'"):
        create_app(settings_for(tmp_path, bad))
    missing = str(tmp_path / "absent.yaml")
    with pytest.raises(ModelsFileError, match=rf"Models file {missing} \(MODELS_FILE\) cannot be read"):
        create_app(settings_for(tmp_path, missing))


# --- done when: a declared model answers through /api/generate, with the upstream's usage and cost ------

def _events(response) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in response.get_data(as_text=True).splitlines()
            if line.startswith("data: ")]


def test_declared_model_answers_over_http_with_the_upstreams_usage_and_cost(tmp_path, server):
    settings = settings_for(tmp_path, write(tmp_path, VALID.format(base_url=server.base_url)), UPSTREAM_KEY=KEY)
    client = create_app(settings, {"TESTING": True}).test_client()
    expected_cost = (600 * 0.15 + 400 * 0.075 + 120 * 0.6) / 1e6
    server.enqueue(
        WireReply(text="plain answer", prompt_tokens=1000, completion_tokens=120, cached_tokens=400,
                  reasoning_tokens=20),
        WireReply(chunks=["streamed", " answer"], prompt_tokens=1000, completion_tokens=120, cached_tokens=400,
                  reasoning_tokens=20),
    )
    body = client.post("/api/generate", json={"prompt": "hello", "model": "fast"}).get_json()
    assert (body["status"], body["response"], body["model"], body["provider"]) == (
        "success", "plain answer", "fast-upstream", "openai_compatible")
    assert (body["input_tokens"], body["cached_tokens"], body["output_tokens"], body["thinking_tokens"],
            body["tokens"]) == (1000, 400, 120, 20, 1120)
    assert body["cost"] == pytest.approx(expected_cost, rel=1e-12)

    events = _events(client.post("/api/generate", json={"prompt": "hello", "model": "fast", "stream": True}))
    assert [e["delta"] for e in events[:-1]] == ["streamed", " answer"]
    done = events[-1]
    assert done["done"] is True and done["status"] == "success" and done["response"] == "streamed answer"
    assert (done["input_tokens"], done["cached_tokens"], done["output_tokens"], done["thinking_tokens"]) == (
        1000, 400, 120, 20)
    assert done["cost"] == pytest.approx(expected_cost, rel=1e-12)

    assert [body["model"] for body in server.completions()] == ["fake-gpt", "fake-gpt"]
    rows = client.get("/api/requests?model=fast-upstream").get_json()["requests"]
    assert [(r["stream"], r["cost"] == pytest.approx(expected_cost)) for r in rows] == [(True, True), (False, True)]
    listed = {d["name"]: d for d in client.get("/api/models").get_json()["details"]}
    assert listed["fast-upstream"]["aliases"] == ["fast"]
    assert listed["fast-upstream"]["provider"] == "openai_compatible"
