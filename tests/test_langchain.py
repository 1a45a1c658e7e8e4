"""LangChain interop: `ManagedChatModel` runs every LangChain call on the managed path, as one request-log row with
source `langchain`, and maps messages, parameters, tool calls and usage both ways. Skipped without the extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import BaseModel as PydanticModel

pytest.importorskip("langchain_core")

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, SystemMessage, ToolMessage
from langchain_core.output_parsers import JsonOutputParser, StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.tools import tool

from core.errors import InvalidInputError
from models.errors import UnknownModelError, UnsupportedParameterError
from models.langchain_chat import ManagedChatModel
from models.model_registry import ModelRegistry
from models.openai_compatible import OpenAICompatibleModel
from models.params import GenerationParams
from models.retry import RetryPolicy
from tests.fakes import FakeModel
from tests.openai_wire_server import OpenAIWireServer, WireReply

ROOT = Path(__file__).resolve().parent.parent
WEATHER_CALL = {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}


@tool
def get_weather(city: str) -> str:
    """The weather in a city."""
    return json.dumps({"city": city, "sky": "sunny"})


class NoToolsModel(FakeModel):
    """A model whose provider honours only the common parameters: no tools."""

    supported_params = GenerationParams.COMMON


@pytest.fixture
def registry(settings) -> ModelRegistry:
    return ModelRegistry(settings.database_url, settings=settings, register_defaults=False)


@pytest.fixture
def fake(registry) -> FakeModel:
    model = FakeModel("fake-model")
    registry.register_model(model, aliases=("fake",))
    return model


@pytest.fixture
def chat(registry, fake) -> ManagedChatModel:
    return ManagedChatModel(model="fake", registry=registry)


def rows(registry: ModelRegistry) -> list[dict]:
    """Every request-log row, oldest first."""
    return list(reversed(registry.call_path.request_log.list(1000)))


def test_invoke_is_one_langchain_row_whose_tokens_and_cost_the_message_reports(chat, registry):
    message = chat.invoke("hello there world")
    [row] = rows(registry)
    assert isinstance(message, AIMessage) and message.content == "echo: hello there world"
    assert (row["source"], row["model"], row["status"], row["stream"]) == ("langchain", "fake-model", "success", False)
    assert message.usage_metadata == {"input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"],
                                      "total_tokens": row["input_tokens"] + row["output_tokens"]}
    assert (row["input_tokens"], row["output_tokens"]) == (3, 4)
    metadata = message.response_metadata
    assert (metadata["request_id"], metadata["model_name"], metadata["finish_reason"]) == (
        row["request_id"], "fake-model", "stop")
    assert metadata["cost"] == pytest.approx(row["cost"]) and row["cost"] > 0


def test_messages_and_parameters_reach_the_model_and_a_call_overrides_the_defaults(registry, fake):
    chat = ManagedChatModel(model="fake", registry=registry, temperature=0.2, max_tokens=50, user_id="u-1",
                            request_tags=["lc"])
    conversation = [SystemMessage("Be brief."), HumanMessage("Hi"), AIMessage("Hello!"), HumanMessage("Weather?")]
    chat.invoke(conversation, temperature=0.7, stop=["\n"], seed=3)
    [request] = fake.calls
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Weather?")]
    assert request.params.given() == {"temperature": 0.7, "max_tokens": 50, "stop": ["\n"], "seed": 3}
    [row] = rows(registry)
    assert (row["source"], row["user_id"], row["tags"]) == ("langchain", "u-1", ["lc"])


def test_an_unknown_parameter_is_refused_by_name_before_any_call(chat, registry, fake):
    with pytest.raises(InvalidInputError) as refused:
        chat.invoke("x", surprise=1)
    assert "surprise" in [f["field"] for f in refused.value.details["fields"]]
    assert fake.calls == [] and rows(registry) == []


def test_an_unknown_model_is_refused_at_construction(registry):
    with pytest.raises(UnknownModelError):
        ManagedChatModel(model="nobody", registry=registry)


def test_stream_yields_the_chunks_then_the_usage_of_the_one_recorded_call(chat, registry):
    chunks = list(chat.stream("one two three"))
    assert [c.content for c in chunks[:-1]] == ["echo:", " one", " two", " three"]
    whole = sum(chunks[1:], chunks[0])
    assert isinstance(whole, AIMessageChunk) and whole.content == "echo: one two three"
    [row] = rows(registry)
    assert (row["source"], row["stream"], row["status"]) == ("langchain", True, "success")
    assert whole.usage_metadata is not None
    assert (whole.usage_metadata["input_tokens"], whole.usage_metadata["output_tokens"]) == (
        row["input_tokens"], row["output_tokens"])
    assert whole.response_metadata["request_id"] == row["request_id"]


def test_a_stream_left_early_is_still_recorded_once(chat, registry):
    stream = chat.stream("one two three four")
    next(stream)
    stream.close()
    [row] = rows(registry)
    assert (row["source"], row["status"]) == ("langchain", "cancelled")


def test_batch_is_one_row_per_input(chat, registry):
    answers = chat.batch(["a", "b c", "d e f"])
    assert [a.content for a in answers] == ["echo: a", "echo: b c", "echo: d e f"]
    logged = rows(registry)
    assert len(logged) == 3 and {r["source"] for r in logged} == {"langchain"}
    assert sorted(a.response_metadata["request_id"] for a in answers) == sorted(r["request_id"] for r in logged)


def test_a_three_step_chain_feeds_one_answer_into_the_next_prompt(chat, registry, fake):
    fake.enqueue("Paris", '{"city": "Paris", "landmark": "Eiffel Tower"}')
    capital = ChatPromptTemplate.from_messages([("system", "Answer with one word."),
                                                ("human", "What is the capital of {country}?")])
    landmark = ChatPromptTemplate.from_messages([("human", "Name the best-known landmark of {city}, as JSON.")])
    chain = (capital | chat | StrOutputParser() | (lambda city: {"city": city})
             | landmark | chat | JsonOutputParser())
    assert chain.invoke({"country": "France"}) == {"city": "Paris", "landmark": "Eiffel Tower"}
    assert [request.prompt for request in fake.calls] == [
        "What is the capital of France?", "Name the best-known landmark of Paris, as JSON."]
    logged = rows(registry)
    assert [(r["source"], r["status"], r["prompt"]) for r in logged] == [
        ("langchain", "success", "What is the capital of France?"),
        ("langchain", "success", "Name the best-known landmark of Paris, as JSON.")]


def test_the_chain_streams_through_the_parser_too(chat, registry, fake):
    fake.enqueue("red green blue")
    chain = ChatPromptTemplate.from_template("Colours of {thing}") | chat | StrOutputParser()
    assert "".join(chain.stream({"thing": "flags"})) == "red green blue"
    [row] = rows(registry)
    assert (row["source"], row["stream"]) == ("langchain", True)


@pytest.fixture
def upstream():
    with OpenAIWireServer() as server:
        yield server


@pytest.fixture
def tool_chat(registry, upstream) -> ManagedChatModel:
    model = OpenAICompatibleModel("wire-gpt", base_url=upstream.base_url, api_key="sk-test", timeout=5.0,
                                  retry=RetryPolicy(attempts=1))
    registry.register_model(model)
    return ManagedChatModel(model="wire-gpt", registry=registry)


@pytest.mark.parametrize("stream", [False, True])
def test_a_bound_tool_round_trip(tool_chat, registry, upstream, stream):
    upstream.enqueue(WireReply(tool_calls=[WEATHER_CALL], prompt_tokens=11, completion_tokens=6),
                     WireReply(text="It is sunny in Oslo.", prompt_tokens=20, completion_tokens=5))
    with_tools = tool_chat.bind_tools([get_weather], tool_choice="auto")
    question = [HumanMessage("What is the weather in Oslo?")]
    if stream:
        chunks = list(with_tools.stream(question))
        asked: AIMessage = sum(chunks[1:], chunks[0])
    else:
        asked = with_tools.invoke(question)
    assert [(c["id"], c["name"], c["args"]) for c in asked.tool_calls] == [("call_1", "get_weather", {"city": "Oslo"})]
    assert asked.usage_metadata is not None and asked.usage_metadata["input_tokens"] == 11
    answer = get_weather.invoke(asked.tool_calls[0])
    assert isinstance(answer, ToolMessage) and answer.tool_call_id == "call_1"
    final = with_tools.invoke([*question, asked, answer])
    assert final.content == "It is sunny in Oslo." and final.tool_calls == []

    first, second = upstream.completions()
    assert first["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    assert first["tool_choice"] == "auto"
    assert second["messages"][1:] == [
        {"role": "assistant", "tool_calls": [WEATHER_CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"city": "Oslo", "sky": "sunny"}'}]
    logged = rows(registry)
    assert [(r["source"], r["stream"], r["input_tokens"], r["output_tokens"]) for r in logged] == [
        ("langchain", stream, 11, 6), ("langchain", False, 20, 5)]
    assert logged[0]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_a_tool_choice_by_name_forces_that_function(tool_chat, upstream):
    upstream.enqueue(WireReply(tool_calls=[WEATHER_CALL]))
    tool_chat.bind_tools([get_weather], tool_choice="get_weather").invoke("Oslo?")
    [sent] = upstream.completions()
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}


def test_structured_output_rides_on_a_forced_tool_call(tool_chat, registry, upstream):
    class Weather(PydanticModel):
        """A weather report."""

        city: str
        sky: str

    upstream.enqueue(WireReply(tool_calls=[{"id": "call_1", "type": "function", "function": {
        "name": "Weather", "arguments": '{"city": "Oslo", "sky": "sunny"}'}}]))
    assert tool_chat.with_structured_output(Weather).invoke("Oslo?") == Weather(city="Oslo", sky="sunny")
    [sent] = upstream.completions()
    assert sent["tool_choice"] == "required" and sent["tools"][0]["function"]["name"] == "Weather"
    [row] = rows(registry)
    assert row["source"] == "langchain"


def test_a_model_without_tools_refuses_bind_tools_clearly(registry):
    plain = NoToolsModel("plain-model")
    registry.register_model(plain)
    chat = ManagedChatModel.from_model(registry.require_model("plain-model"))
    with pytest.raises(UnsupportedParameterError) as refused:
        chat.bind_tools([get_weather])
    [field] = refused.value.details["fields"]
    assert field["field"] == "tools" and "plain-model (fake) does not use tools" in field["reason"]
    assert plain.calls == [] and rows(registry) == []


def test_from_model_records_in_the_models_registry(registry, fake):
    chat = ManagedChatModel.from_model(registry.require_model("fake-model"), max_tokens=2)
    assert chat.invoke("a b c").content == "echo: a"
    [row] = rows(registry)
    assert (row["source"], row["output_tokens"], row["finish_reason"]) == ("langchain", 2, "length")


def test_the_product_imports_without_langchain():
    """Only users import the interop module: the service, the registry and the models work without the extra."""
    code = ("import sys; sys.modules['langchain_core'] = None\n"
            "import api.app, models.model_registry, wiring\n"
            "assert 'models.langchain_chat' not in sys.modules\n"
            "try:\n    import models.langchain_chat\nexcept ImportError as e:\n    print(e)\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "pip install -r requirements-langchain.txt" in done.stdout
