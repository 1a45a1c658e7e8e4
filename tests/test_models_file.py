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
    (ENTRY.replace("openai_compatible", "nope"), "models[1] (name 'broken')", "provider",
     "does not match any of the expected tags: 'openai_compatible', 'azure_openai', 'anthropic', 'gemini', 'local'"),
    (ENTRY.replace("    provider: openai_compatible\n", ""), "models[1] (name 'broken')", "provider",
     "Unable to extract tag using discriminator 'provider'"),
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


# --- providers: one entry class each, unknown keys refused -------------------------------------------

def app_with(tmp_path, *entries: dict, **environ: str):
    """An app whose models file declares `entries`; UPSTREAM_KEY holds the wire server's key."""
    path = tmp_path / "models.yaml"
    path.write_text(json.dumps({"models": list(entries)}))
    return create_app(settings_for(tmp_path, str(path), UPSTREAM_KEY=KEY, **environ), {"TESTING": True})


def load_one(tmp_path, entry: dict, **environ: str):
    """The registry of an app whose models file declares `entry`."""
    return services(app_with(tmp_path, entry, **environ)).registry


def test_each_provider_loads_with_the_common_fields(tmp_path, server):
    from models.azure_openai import AzureOpenAIModel
    from models.gemini_model import GeminiModel
    from models.local_model import LocalModel, default_model_path

    common = {"display_name": "Shown", "aliases": [], "cache": {"ttl_s": 60}, "capabilities": {"streaming": False}}
    entries = [
        {"name": "compat", "provider": "openai_compatible", "base_url": server.base_url, **common},
        {"name": "azure", "provider": "azure_openai", "base_url": "https://res.openai.azure.com", "deployment": "dep",
         "api_version": "2024-10-21", "api_key_env": "AZ_KEY", **common},
        {"name": "gemini-2.5-flash", "provider": "gemini", "model": "gemini-2.5-flash", **common},
        {"name": "tiny", "provider": "local", "path": default_model_path(), "n_ctx": 1024, **common},
    ]
    path = tmp_path / "models.yaml"
    path.write_text(json.dumps({"models": entries}))
    registry = services(create_app(settings_for(tmp_path, str(path), AZ_KEY="k", GEMINI_API_KEY="g"))).registry
    models = {name: registry.get_model(name) for name in ("compat", "azure", "gemini-2.5-flash", "tiny")}
    assert [type(m) for m in models.values()] == [OpenAICompatibleModel, AzureOpenAIModel, GeminiModel, LocalModel]
    azure = models["azure"]
    assert (azure.deployment, azure.api_version, azure.upstream_model, azure.provider) == (
        "dep", "2024-10-21", "dep", "azure_openai")
    assert (models["tiny"].model_path, models["tiny"].context_window) == (default_model_path(), 1024)
    for model in models.values():
        described = model.describe()
        assert described["display_name"] == "Shown" and described["capabilities"]["streaming"] is False
        assert model.cache_policy.ttl_s == 60


def test_an_anthropic_entry_builds_the_anthropic_model(tmp_path):
    anthropic_model = pytest.importorskip("models.anthropic_model")
    registry = load_one(tmp_path, {"name": "claude", "provider": "anthropic", "model": "claude-haiku-4-5",
                                   "base_url": "http://127.0.0.1:9", "timeout": 5, "max_attempts": 2},
                        ANTHROPIC_API_KEY="sk-ant")
    model = registry.get_model("claude")
    assert isinstance(model, anthropic_model.AnthropicModel)
    assert (model.name, model.upstream_model, model.base_url, model.api_key_env, model.timeout) == (
        "claude", "claude-haiku-4-5", "http://127.0.0.1:9", "ANTHROPIC_API_KEY", 5.0)
    assert model.pricing == registry.pricing.get("claude-haiku-4-5")  # priced by its upstream id
    assert "sk-ant" not in repr(model)


def test_a_gemini_entry_without_its_key_is_left_out_like_the_built_in_ones(tmp_path, caplog):
    registry = load_one(tmp_path, {"name": "gemini-2.5-flash", "provider": "gemini", "api_key_env": "MY_GEMINI"})
    assert registry.get_model("gemini-2.5-flash") is None
    assert "MY_GEMINI is not set" in caplog.text


AZURE = "  - name: az\n    provider: azure_openai\n    base_url: https://res.openai.azure.com\n" \
        "    deployment: dep\n    api_version: '2024-10-21'\n    api_key_env: AZ_KEY\n"


@pytest.mark.parametrize(("entry", "field", "why"), [
    (AZURE.replace("deployment:", "deploymnet:"), "deploymnet", "Extra inputs are not permitted"),
    (AZURE.replace("    deployment: dep\n", ""), "deployment", "Field required"),
    (AZURE.replace("    api_version: '2024-10-21'\n", ""), "api_version", "Field required"),
    (AZURE.replace("    api_key_env: AZ_KEY\n", ""), "api_key_env", "Field required"),
    (AZURE.replace("base_url: https://res.openai.azure.com", "base_url: res"), "base_url", "http:// or https://"),
    (AZURE + "    kind: embeddings\n", "kind", "Extra inputs are not permitted"),
    (ENTRY + "    display_nmae: Fast\n", "display_nmae", "Extra inputs are not permitted"),
    (ENTRY + "    defaults: {max_tokens: 0}\n", "defaults.max_tokens", "greater than or equal to 1"),
    (ENTRY + "    defaults: {temprature: 0.2}\n", "defaults.temprature", "Extra inputs are not permitted"),
    (ENTRY + "    capabilities: {hearing: true}\n", "capabilities", "unknown capabilities hearing; known:"),
    ("  - name: g\n    provider: gemini\n    model: gemini-2.5-pro\n", "model", "called by its name"),
    ("  - name: l\n    provider: local\n    path: /nowhere.gguf\n", "path", "no such file: /nowhere.gguf"),
])
def test_entries_refuse_unknown_and_missing_keys_naming_entry_and_key(tmp_path, entry, field, why):
    path = write(tmp_path, "models:\n" + entry)
    with pytest.raises(ModelsFileError) as caught:
        load_models_file(path)
    message = str(caught.value)
    assert f"models[0] (name '{entry.split()[2]}'): field '{field}'" in message and why in message, message


# --- per-model defaults --------------------------------------------------------------------------------

DEFAULTS = {"name": "house", "provider": "openai_compatible", "model": "fake-gpt", "api_key_env": "UPSTREAM_KEY",
            "defaults": {"max_tokens": 64, "temperature": 0.2, "system": "Answer in French."}}


def test_defaults_are_sent_when_a_call_leaves_them_unset_and_the_call_wins(tmp_path, server):
    registry = load_one(tmp_path, {**DEFAULTS, "base_url": server.base_url})
    model = registry.get_model("house")
    model.generate("hi")
    model.generate("hi", max_tokens=5, system="Be brief.")
    model.generate(messages=[{"role": "system", "content": "Own system."}, {"role": "user", "content": "hi"}],
                   temperature=1.0)
    first, second, third = server.completions()
    assert (first["max_tokens"], first["temperature"], first["messages"]) == (
        64, 0.2, [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "hi"}])
    assert (second["max_tokens"], second["temperature"], second["messages"][0]) == (
        5, 0.2, {"role": "system", "content": "Be brief."})
    assert (third["max_tokens"], third["temperature"], [m["content"] for m in third["messages"]]) == (
        64, 1.0, ["Own system.", "hi"])


def test_defaults_apply_over_http_too(tmp_path, server):
    client = app_with(tmp_path, {**DEFAULTS, "base_url": server.base_url}).test_client()
    client.post("/v1/chat/completions", json={"model": "house", "messages": [{"role": "user", "content": "hi"}]})
    [sent] = server.completions()
    assert (sent["max_tokens"], sent["temperature"], sent["messages"][0]["content"]) == (64, 0.2, "Answer in French.")


@pytest.mark.parametrize(("defaults", "field", "why"), [
    ({"max_tokens": 40_000}, "defaults.max_tokens", "house generates at most 32768 tokens; 40000 were asked"),
    ({"top_k": 5}, "defaults.top_k", "not supported by house (openai_compatible)"),
])
def test_defaults_the_model_cannot_honour_stop_start_up(tmp_path, defaults, field, why):
    path = tmp_path / "models.yaml"
    path.write_text(json.dumps({"models": [{**DEFAULTS, "base_url": "http://127.0.0.1:9/v1", "defaults": defaults}]}))
    with pytest.raises(ModelsFileError) as caught:
        create_app(settings_for(tmp_path, str(path)))
    assert f"models[0] (name 'house'): field '{field}': {why}" in str(caught.value)


def test_display_name_is_listed_by_get_api_models(tmp_path, server):
    client = app_with(tmp_path, {"name": "shown", "provider": "openai_compatible", "base_url": server.base_url,
                                 "display_name": "House GPT"},
                      {"name": "plain", "provider": "openai_compatible", "base_url": server.base_url}).test_client()
    listed = {d["name"]: d["display_name"] for d in client.get("/api/models").get_json()["details"]}
    assert (listed["shown"], listed["plain"]) == ("House GPT", "plain")


# --- prices from the pricing table ----------------------------------------------------------------------

def test_an_entry_without_prices_is_priced_by_its_upstream_model_then_its_name(tmp_path, server):
    base = {"provider": "openai_compatible", "base_url": server.base_url, "api_key_env": "UPSTREAM_KEY"}
    client = app_with(tmp_path, {"name": "mini", "model": "gpt-4o-mini", **base},  # the upstream id is priced
                      {"name": "gpt-4.1", "model": "my-finetune", **base},  # only the name is
                      {"name": "mystery", "model": "unknown-upstream", **base},  # neither: unpriced, as before
                      ).test_client()
    registry = services(client.application).registry
    assert registry.get_model("mini").pricing.summary() == {
        "input_per_million": 0.15, "output_per_million": 0.6, "cached_input_per_million": 0.075}
    assert registry.get_model("mini").pricing.source == "https://openai.com/api/pricing"
    assert registry.get_model("gpt-4.1").pricing.input_per_million == 2.0
    assert registry.get_model("mystery").pricing is None
    server.enqueue(WireReply(text="a", prompt_tokens=1000, completion_tokens=100),
                   WireReply(text="b", prompt_tokens=1000, completion_tokens=100))
    priced = client.post("/api/generate", json={"prompt": "hi", "model": "mini"}).get_json()
    unpriced = client.post("/api/generate", json={"prompt": "hi", "model": "mystery"}).get_json()
    assert priced["cost"] == pytest.approx((1000 * 0.15 + 100 * 0.6) / 1e6)
    assert unpriced["status"] == "success" and unpriced["cost"] is None
