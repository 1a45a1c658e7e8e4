"""OpenAICompatibleEmbeddingModel with the real `openai` SDK against a local server speaking `/embeddings`."""

from __future__ import annotations

import pytest

from core.settings import Settings
from models.errors import (
    InvalidRequestError,
    MalformedResponseError,
    MissingAPIKeyError,
    RateLimitedError,
    UnsupportedOperationError,
)
from models.model_registry import ModelRegistry
from models.openai_embeddings import OpenAICompatibleEmbeddingModel
from models.pricing import ModelPricing, PricingTable
from models.request_log import RequestLogRepository
from models.retry import RetryPolicy
from storage.database import get_engine
from tests.fakes import fake_vector
from tests.openai_wire_server import OpenAIWireServer, WireReply

KEY = "sk-test-secret-key-0123456789abcdef"
PRICING = ModelPricing(input_per_million=0.02, output_per_million=0.0)
FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.01, jitter=0.001)
TEXTS = ["the quick brown fox", "jumps"]


@pytest.fixture
def server():
    with OpenAIWireServer(api_key=KEY) as server:
        yield server


@pytest.fixture
def registry(settings):
    return ModelRegistry(get_engine(settings.database_url), settings=settings, pricing=PricingTable({}),
                         register_defaults=False)


@pytest.fixture
def log(registry):
    return RequestLogRepository(registry.engine)


@pytest.fixture
def make_model(server, registry):
    """An embedding model on the test server, registered so its calls are recorded."""
    def make(**kwargs) -> OpenAICompatibleEmbeddingModel:
        kwargs.setdefault("api_key", KEY)
        model = OpenAICompatibleEmbeddingModel("small-embedder", base_url=server.base_url, model="text-embed-fake",
                                               pricing=PRICING, timeout=5.0, retry=FAST_RETRY, **kwargs)
        registry.register_model(model)
        return model

    return make


def test_vectors_usage_and_cost_are_the_upstreams(make_model, log):
    result = make_model().embed(TEXTS)
    assert result.vectors == [fake_vector(text, 8) for text in TEXTS]  # base64 float32, decoded by the SDK
    assert (result.input_tokens, result.provider) == (5, "openai_compatible")
    assert result.cost == pytest.approx(5 * 0.02 / 1e6, rel=1e-12)
    (row,) = log.list()
    assert (row["operation"], row["status"], row["input_tokens"], row["cost"]) == ("embeddings", "success", 5,
                                                                                   result.cost)


def test_request_carries_the_upstream_model_the_texts_dimensions_and_key(server, make_model):
    make_model().embed(TEXTS, dimensions=4)
    make_model().embed("one")
    (request, _), (with_dimensions, plain) = server.requests, server.embedding_requests()
    assert (request["method"], request["path"]) == ("POST", "/v1/embeddings")
    assert request["headers"]["authorization"] == f"Bearer {KEY}"
    assert with_dimensions == {"model": "text-embed-fake", "input": TEXTS, "dimensions": 4,
                               "encoding_format": "base64"}
    assert plain == {"model": "text-embed-fake", "input": ["one"], "encoding_format": "base64"}


def test_a_rate_limited_attempt_is_retried_and_recorded_once(server, make_model, log):
    server.enqueue(WireReply(status=429))
    assert make_model().embed(TEXTS).vectors
    assert len(server.embedding_requests()) == 2
    (row,) = log.list()
    assert row["status"] == "success"


@pytest.mark.parametrize(("reply", "error", "attempts"), [
    (WireReply(status=400, message="input is too long"), InvalidRequestError, 1),
    (WireReply(status=429), RateLimitedError, 3),
    (WireReply(fault="not_json"), MalformedResponseError, 1),
])
def test_failures_are_mapped_recorded_once_and_raised(server, make_model, log, reply, error, attempts):
    server.enqueue(reply, reply, reply)
    with pytest.raises(error):
        make_model().embed(TEXTS)
    assert len(server.embedding_requests()) == attempts
    (row,) = log.list()
    assert (row["operation"], row["status"], row["error_type"]) == ("embeddings", "error", error.code)


def test_a_missing_key_fails_before_any_request(server, make_model, log):
    with pytest.raises(MissingAPIKeyError, match="UPSTREAM_KEY"):
        make_model(api_key=None, api_key_env="UPSTREAM_KEY").embed(TEXTS)
    assert server.requests == [] and log.list()[0]["error_type"] == "missing_api_key"


def test_an_embedding_model_refuses_to_chat_without_asking_the_upstream(server, make_model, log):
    with pytest.raises(UnsupportedOperationError) as refused:
        make_model().generate("hi")
    assert refused.value.code == "chat_not_supported"
    assert server.requests == [] and log.count() == 0


def test_the_models_file_declares_embedding_models_by_kind(tmp_path, server, sqlite_url):
    models_file = tmp_path / "models.yaml"
    models_file.write_text(f"""\
models:
  - name: small-embedder
    provider: openai_compatible
    kind: embeddings
    base_url: {server.base_url}
    model: text-embed-fake
    api_key_env: UPSTREAM_KEY
    pricing: {{input_per_million: 0.02, output_per_million: 0}}
  - name: chatty
    provider: openai_compatible
    base_url: {server.base_url}
""")
    settings = Settings.from_env(environ={"UPSTREAM_KEY": KEY}, env_file=None, overrides={
        "DATABASE_URL": sqlite_url, "MODELS_FILE": str(models_file)})
    registry = ModelRegistry(get_engine(sqlite_url), settings=settings)
    embedder, chatty = registry.require_model("small-embedder"), registry.require_model("chatty")
    assert isinstance(embedder, OpenAICompatibleEmbeddingModel) and embedder.describe()["capabilities"]["embeddings"]
    assert not chatty.capabilities.embeddings
    assert embedder.embed("hello").cost == pytest.approx(0.02 / 1e6)
