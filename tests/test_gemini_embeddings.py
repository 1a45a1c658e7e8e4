"""GeminiEmbeddingModel with the real google-genai SDK against a local server speaking `batchEmbedContents`."""

from __future__ import annotations

import logging

import pytest

from api.app import create_app
from core.settings import Settings
from models import retry as retry_module
from models.errors import (
    InvalidRequestError,
    MalformedResponseError,
    ProviderUnavailableError,
    UnsupportedOperationError,
)
from models.gemini_embeddings import BATCH_SIZE, GeminiEmbeddingModel
from models.gemini_model import GeminiModel
from models.model_registry import ModelRegistry
from models.pricing import PricingTable
from models.request_log import RequestLogRepository
from monitoring.budget_guard import BudgetExceededError
from monitoring.budgets import BudgetService, BudgetSpec
from storage.database import get_engine
from tests.fakes import fake_vector
from tests.gemini_wire_server import WireReply

KEY = "AIzaSy-test-secret-key-0123456789"
NAME = "gemini-embedding-001"
PRICE = 0.15  # USD per million input tokens
TEXTS = ["the quick brown fox", "jumps"]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(retry_module, "RETRY_INITIAL_DELAY", 0.001)
    monkeypatch.setattr(retry_module, "RETRY_MAX_DELAY", 0.01)
    monkeypatch.setattr(retry_module, "RETRY_JITTER", 0.001)


@pytest.fixture
def gemini_settings(sqlite_url, gemini_server) -> Settings:
    return Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": sqlite_url, "GEMINI_API_KEY": KEY, "GEMINI_BASE_URL": gemini_server.base_url,
        "GEMINI_TIMEOUT": "5", "GEMINI_MAX_ATTEMPTS": "3"})


@pytest.fixture
def registry(gemini_settings):
    """The default models as configured with a Gemini key; the local model is registered but never loaded."""
    return ModelRegistry(get_engine(gemini_settings.database_url), settings=gemini_settings,
                         pricing=PricingTable.load())


@pytest.fixture
def log(registry):
    return RequestLogRepository(registry.engine)


@pytest.fixture
def embedder(registry) -> GeminiEmbeddingModel:
    model = registry.require_model(NAME)
    assert isinstance(model, GeminiEmbeddingModel)
    return model


def test_a_configured_key_registers_the_embedding_model_beside_the_chat_models(registry):
    embedder, flash = registry.require_model(NAME), registry.require_model("gemini-2.5-flash")
    assert isinstance(embedder, GeminiEmbeddingModel) and type(flash) is GeminiModel
    assert (embedder.capabilities.embeddings, embedder.capabilities.chat) == (True, False)
    assert (flash.capabilities.embeddings, flash.capabilities.chat) == (False, True)
    assert embedder.describe()["pricing"]["input_per_million"] == PRICE


def test_vectors_come_from_batch_embed_contents_and_tokens_from_count_tokens(gemini_server, embedder, log):
    result = embedder.embed(TEXTS, dimensions=4)
    assert result.vectors == [fake_vector(text, 4) for text in TEXTS]
    embed, count = gemini_server.requests
    assert (embed["path"], embed["headers"]["x-goog-api-key"]) == (f"/v1beta/models/{NAME}:batchEmbedContents", KEY)
    assert embed["json"] == {"requests": [
        {"content": {"parts": [{"text": text}], "role": "user"}, "outputDimensionality": 4, "model": f"models/{NAME}"}
        for text in TEXTS]}
    assert count["path"] == f"/v1beta/models/{NAME}:countTokens"  # the batch reply has no usage
    assert count["json"] == {"contents": [{"parts": [{"text": text}], "role": "user"} for text in TEXTS]}
    assert (result.input_tokens, result.cost) == (5, pytest.approx(5 * PRICE / 1e6, rel=1e-12))
    (row,) = log.list()
    assert (row["operation"], row["model"], row["provider"], row["input_tokens"]) == ("embeddings", NAME, "gemini", 5)


def test_reported_usage_is_taken_without_counting(gemini_server, embedder):
    gemini_server.enqueue(WireReply(prompt_tokens=42))
    assert embedder.embed(TEXTS).input_tokens == 42
    assert [r["action"] for r in gemini_server.requests] == ["batchEmbedContents"]


def test_more_texts_than_one_batch_are_split_and_recorded_as_one_call(gemini_server, embedder, log):
    texts = [f"text {i}" for i in range(BATCH_SIZE + 5)]
    result = embedder.embed(texts)
    assert result.vectors == [fake_vector(text, 8) for text in texts] and result.input_tokens == 2 * len(texts)
    batches = [len(r["json"]["requests"]) for r in gemini_server.requests_for("batchEmbedContents")]
    assert batches == [BATCH_SIZE, 5] and log.count() == 1


def test_a_failed_count_records_the_byte_bound_and_warns(embedder, monkeypatch, caplog):
    def unavailable(contents):
        raise ProviderUnavailableError("countTokens is down")

    monkeypatch.setattr(embedder, "_count", unavailable)
    with caplog.at_level(logging.WARNING, logger="models.gemini_embeddings"):
        result = embedder.embed(TEXTS)
    assert result.input_tokens == len("the quick brown fox") + len("jumps") + 2 * 16
    assert "recording the byte bound" in caplog.text


def test_a_hard_budget_refuses_before_any_embedding_is_requested(gemini_server, registry, embedder, log):
    """The guard the default wiring attaches: the byte bound would not fit, so Gemini counts exactly; 5 tokens
    at $0.15 per million do not fit either, and nothing is embedded."""
    BudgetService(registry.engine).create(BudgetSpec(name="tiny", scope="global", period="daily", limit_usd=5e-7,
                                                     hard_limit=True))
    with pytest.raises(BudgetExceededError) as refused:
        embedder.embed(TEXTS)
    assert refused.value.details["requested"] == pytest.approx(5 * PRICE / 1e6)
    assert [r["action"] for r in gemini_server.requests] == ["countTokens"]
    (row,) = log.list()
    assert (row["operation"], row["status"]) == ("embeddings", "rejected")


def test_an_unavailable_upstream_is_retried(gemini_server, embedder, log):
    gemini_server.enqueue(WireReply(status=503))
    assert embedder.embed(TEXTS).vectors
    assert len(gemini_server.requests_for("batchEmbedContents")) == 2 and log.count() == 1


@pytest.mark.parametrize(("reply", "error"), [
    (WireReply(status=400, message="Request payload size exceeds the limit"), InvalidRequestError),
    (WireReply(fault="not_json"), MalformedResponseError),
])
def test_failures_are_mapped_recorded_once_and_raised(gemini_server, embedder, log, reply, error):
    gemini_server.enqueue(reply)
    with pytest.raises(error):
        embedder.embed(TEXTS)
    assert len(gemini_server.requests_for("batchEmbedContents")) == 1
    (row,) = log.list()
    assert (row["operation"], row["status"], row["error_type"]) == ("embeddings", "error", error.code)


def test_chat_and_embedding_models_each_refuse_the_other_operation(gemini_server, registry, log):
    with pytest.raises(UnsupportedOperationError) as no_chat:
        registry.require_model(NAME).generate("hi")
    with pytest.raises(UnsupportedOperationError) as no_embeddings:
        registry.require_model("gemini-2.5-flash").embed("hi")
    assert (no_chat.value.code, no_embeddings.value.code) == ("chat_not_supported", "embeddings_not_supported")
    assert gemini_server.requests == [] and log.count() == 0


def test_the_api_answers_400_when_an_embedding_model_is_asked_to_generate(gemini_settings, gemini_server):
    client = create_app(gemini_settings, {"TESTING": True}).test_client()
    response = client.post("/api/generate", json={"prompt": "hi", "model": NAME})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "chat_not_supported" and gemini_server.requests == []
