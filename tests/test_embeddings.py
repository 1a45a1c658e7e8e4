"""Embeddings on the managed call path: one request-log row per call (operation `embeddings`), priced at the input
rate, guarded by budgets before the provider, refused early by models that cannot embed, inputs validated."""

import pytest

from core.errors import InvalidInputError
from core.settings import Settings
from models.base_model import Capabilities
from models.call_path import Call, CallPath
from models.embeddings import MAX_EMBEDDING_INPUT_CHARS, MAX_EMBEDDING_INPUTS, EmbeddingRequest
from models.errors import ProviderUnavailableError, UnsupportedOperationError, UnsupportedParameterError
from models.model_registry import ModelRegistry
from models.params import CallContext
from models.request_log import RequestLogRepository
from monitoring.budget_guard import BudgetExceededError, BudgetGuard
from monitoring.budgets import BudgetService, BudgetSpec
from storage.database import get_engine
from tests.fakes import FAKE_PRICING, FakeModel, fake_vector

TEXTS = ["one two three", "four five"]


@pytest.fixture
def registry(settings):
    registry = ModelRegistry(get_engine(settings.database_url), settings=settings, register_defaults=False)
    registry.register_model(FakeModel(), aliases=("fake",))
    return registry


@pytest.fixture
def log(registry):
    return RequestLogRepository(registry.engine)


@pytest.fixture
def model(registry) -> FakeModel:
    model = registry.get_model("fake")
    assert isinstance(model, FakeModel)
    return model


class ChatOnly(FakeModel):
    capabilities = Capabilities()


class EmbeddingOnly(FakeModel):
    capabilities = Capabilities(chat=False, embeddings=True)


# --- recording and pricing ---------------------------------------------------------------------------

def test_embeddings_are_recorded_once_with_provider_tokens_and_input_priced_cost(model, log):
    result = model.embed(TEXTS, user_id="u1", tags=["rag"], dimensions=4)
    assert result.vectors == [fake_vector(text, 4) for text in TEXTS] and result.dimensions == 4
    assert (result["input_tokens"], result["model"], result["provider"]) == (5, "fake-model", "fake")
    assert result["cost"] == pytest.approx(5 * FAKE_PRICING.input_per_million / 1e6)
    (row,) = log.list()
    assert (row["operation"], row["status"], row["request_id"]) == ("embeddings", "success", result.request_id)
    assert (row["input_tokens"], row["output_tokens"], row["total_tokens"]) == (5, None, 5)
    assert row["cost"] == result.cost and row["latency"] == result.latency > 0
    assert (row["user_id"], row["tags"], row["params"], row["stream"]) == ("u1", ["rag"], {"dimensions": 4}, False)
    assert (row["prompt"], row["messages"], row["response"]) == ("one two three\nfour five", None, None)


def test_one_text_gives_one_vector_and_chat_rows_say_chat(model, log):
    assert model.embed("solo").vectors == [fake_vector("solo", 3)]
    model.generate("hi")
    assert [row["operation"] for row in log.list()] == ["chat", "embeddings"]
    assert [row["prompt"] for row in log.list(operation="embeddings")] == ["solo"]


def test_provider_failure_is_recorded_once_and_raised(model, log):
    model.enqueue(ProviderUnavailableError("upstream down", provider_status=503))
    with pytest.raises(ProviderUnavailableError):
        model.embed(TEXTS)
    (row,) = log.list()
    assert (row["operation"], row["status"], row["error_type"]) == ("embeddings", "error", "provider_unavailable")
    assert row["input_tokens"] is None and row["cost"] is None


def test_typed_entry_point_takes_a_call_context(model, log):
    context = CallContext(source="api", api_key_id="key-1", request_id="req-embed-1")
    result = model.run_embeddings(EmbeddingRequest.build(TEXTS), context)
    assert (result.request_id, result.source) == ("req-embed-1", "api")
    (row,) = log.list(api_key_id="key-1")
    assert (row["source"], row["operation"]) == ("api", "embeddings")


class RecordingHook:
    def __init__(self):
        self.events: list[tuple[str, str, object]] = []

    def before_call(self, call):
        self.events.append(("before", call.operation, call.request_id))

    def after_call(self, call, result):
        self.events.append(("after", call.operation, result.cost))


def test_hooks_run_around_an_embeddings_call(registry, model):
    hook = RecordingHook()
    registry.add_hook(hook)
    result = model.embed(TEXTS)
    assert hook.events == [("before", "embeddings", result.request_id), ("after", "embeddings", result.cost)]


def test_prompt_logging_policy_applies_to_the_texts(tmp_path):
    for mode, expected in (("truncate", "one "), ("none", None)):
        settings = Settings.from_env(environ={}, env_file=None, overrides={
            "DATABASE_URL": f"sqlite:///{tmp_path / f'{mode}.db'}", "LOG_PROMPTS": mode, "LOG_PROMPTS_MAX_CHARS": "4"})
        registry = ModelRegistry(get_engine(settings.database_url), settings=settings, register_defaults=False)
        registry.register_model(FakeModel())
        registry.require_model("fake-model").embed(TEXTS)
        (row,) = RequestLogRepository(registry.engine).list()
        assert row["prompt"] == expected


# --- budgets -----------------------------------------------------------------------------------------

@pytest.fixture
def guarded(engine, settings):
    budgets = BudgetService(engine)
    registry = ModelRegistry(engine, settings=settings, register_defaults=False,
                             call_path=CallPath(RequestLogRepository(engine), [BudgetGuard(budgets)]))
    model = FakeModel()
    registry.register_model(model)
    return model, budgets, RequestLogRepository(engine)


def _hard_budget(budgets: BudgetService, limit_usd: float) -> None:
    budgets.create(BudgetSpec(name="b", scope="global", period="daily", limit_usd=limit_usd, hard_limit=True))


def test_the_worst_case_of_an_embeddings_call_is_its_input_alone():
    model = FakeModel()
    call = Call(model, EmbeddingRequest.build(TEXTS), CallContext(), "r")
    bound = len("one two three") + len("four five") + 2 * 16  # bytes + 16 per text
    assert (call.operation, call.input_token_bound(), call.exact_input_tokens()) == ("embeddings", bound, 5)
    assert call.worst_case_cost(bound) == pytest.approx(bound * FAKE_PRICING.input_per_million / 1e6)


def test_budget_refuses_before_the_provider_and_the_refusal_is_recorded(guarded):
    model, budgets, log = guarded
    _hard_budget(budgets, 4e-6)  # below even the exact cost of 5 input tokens
    with pytest.raises(BudgetExceededError) as refused:
        model.embed(TEXTS)
    assert model.embedded == []
    assert refused.value.details["requested"] == pytest.approx(5e-6)  # counted exactly before refusing
    (row,) = log.list()
    assert (row["operation"], row["status"], row["error_type"]) == ("embeddings", "rejected", "budget_exceeded")


def test_budget_admits_a_call_whose_exact_count_fits_though_its_bound_does_not(guarded):
    model, budgets, log = guarded
    _hard_budget(budgets, 6e-6)  # the bound (54 tokens) would not fit; the exact 5 do
    assert model.embed(TEXTS).cost == pytest.approx(5e-6)
    assert log.list()[0]["status"] == "success"


# --- refusals before any call --------------------------------------------------------------------------

def test_a_model_that_does_not_embed_refuses_before_the_provider(registry, log):
    registry.register_model(ChatOnly("chat-only"))
    with pytest.raises(UnsupportedOperationError) as refused:
        registry.require_model("chat-only").embed(TEXTS)
    error = refused.value
    assert (error.code, error.http_status, isinstance(error, ValueError)) == ("embeddings_not_supported", 400, True)
    assert error.details["fields"][0]["field"] == "model" and "chat-only (fake)" in error.message
    assert log.count() == 0


def test_an_embedding_only_model_refuses_to_chat(registry, log):
    registry.register_model(EmbeddingOnly("embedder"))
    model = registry.require_model("embedder")
    with pytest.raises(UnsupportedOperationError, match="does not support chat") as refused:
        model.generate("hi")
    assert refused.value.code == "chat_not_supported" and log.count() == 0
    assert model.embed("still embeds").vectors


def test_dimensions_are_refused_by_a_model_with_fixed_size_vectors(registry):
    registry.register_model(EmbeddingOnly("fixed"))
    with pytest.raises(UnsupportedParameterError, match="dimensions: not supported by fixed"):
        registry.require_model("fixed").embed("x", dimensions=8)


@pytest.mark.parametrize(("texts", "dimensions", "field", "reason"), [
    ([], None, "texts", "at least 1 item"),
    ("", None, "texts", "at least 1 character"),
    (["ok", ""], None, "texts.1", "at least 1 character"),
    (["ok", 7], None, "texts.1", "valid string"),
    ([b"bytes"], None, "texts.0", "valid string"),
    (None, None, "texts", "valid list"),
    (["x"] * (MAX_EMBEDDING_INPUTS + 1), None, "texts", f"at most {MAX_EMBEDDING_INPUTS} items"),
    ("x" * (MAX_EMBEDDING_INPUT_CHARS + 1), None, "texts", f"at most {MAX_EMBEDDING_INPUT_CHARS} characters"),
    (["x" * MAX_EMBEDDING_INPUT_CHARS] * 51, None, "texts", "more than the 10000000 allowed"),
    ("ok", 0, "dimensions", "greater than or equal to 1"),
    ("ok", True, "dimensions", "valid integer"),
    ("ok", "8", "dimensions", "valid integer"),
])
def test_invalid_input_is_refused_naming_the_field(model, log, texts, dimensions, field, reason):
    with pytest.raises(InvalidInputError) as refused:
        model.embed(texts, dimensions=dimensions)
    (problem,) = refused.value.fields
    assert problem["field"] == field and reason in problem["reason"]
    assert model.embedded == [] and log.count() == 0
