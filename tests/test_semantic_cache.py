"""The semantic cache: only the last user message is compared by meaning; the model, system prompt, earlier turns,
parameters and tenant must match exactly. Its embeddings are recorded calls; its failures are misses. The unit
tests embed with a bag-of-words fake (same words, same vector); one test uses the real all-MiniLM-L6-v2."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pytest

from models import sentence_embeddings
from models.cache.policy import CachePolicy
from models.cache.question_guard import same_question
from models.cache.semantic import SemanticPolicy
from models.cache.semantic_index import SemanticIndex
from models.embeddings import EmbeddingRequest
from models.errors import ProviderUnavailableError
from models.model_registry import ModelRegistry
from models.results import Usage
from storage.database import create_db_engine, upgrade_schema
from tests.fakes import FakeModel

SEMANTIC = CachePolicy(ttl_s=60, semantic=SemanticPolicy(embedding_model="words", threshold=0.99))
WIDTH = 64


def words_vector(text: str) -> list[float]:
    """A bag of lower-cased words, hashed into WIDTH buckets: the same words in any order and case embed alike."""
    vector = np.zeros(WIDTH)
    for word in re.findall(r"\w+", text.lower()):
        vector[hashlib.sha256(word.encode()).digest()[0] % WIDTH] += 1
    return (vector / np.linalg.norm(vector)).tolist()


class WordsEmbedder(FakeModel):
    def execute_embedding(self, request: EmbeddingRequest, usage: Usage) -> list[list[float]]:
        super().execute_embedding(request, usage)  # records the call, raises a queued failure
        return [words_vector(text) for text in request.texts]


@pytest.fixture
def registry(settings) -> ModelRegistry:
    return ModelRegistry(settings.database_url, settings=settings, register_defaults=False)


@pytest.fixture
def embedder(registry) -> WordsEmbedder:
    model = WordsEmbedder("words")
    registry.register_model(model)
    return model


@pytest.fixture
def cached(registry, embedder) -> FakeModel:
    model = FakeModel("semantic")
    model.cache_policy = SEMANTIC
    registry.register_model(model)
    return model


def test_a_question_in_other_words_is_answered_from_the_cache_as_one_free_row(cached, registry):
    original = cached.generate("What is the capital of France?", temperature=0, request_id="original")
    hit = cached.generate("the capital of france is what", temperature=0, request_id="reworded")
    assert (hit.cache, hit.response, hit.cost, hit.cost_saved) == ("semantic", original.response, 0.0,
                                                                   original.cost)
    assert len(cached.calls) == 1
    row = registry.call_path.request_log.get("reworded")
    assert row is not None and (row["cache"], row["cost"], row["input_tokens"]) == ("semantic", 0.0, None)
    assert row["saved_output_tokens"] == original.output_tokens
    assert cached.generate("What is the capital of Spain?", temperature=0).cache is None  # another question


def test_everything_but_the_last_user_message_must_match_exactly(cached):
    cached.generate("summarize the report", system="Be brief.", temperature=0, api_key_id="a")
    assert cached.generate("Summarize the report.", system="Be brief.", temperature=0, api_key_id="a").cache == \
        "semantic"
    misses = [
        cached.generate("Summarize the report.", system="Be thorough.", temperature=0, api_key_id="a"),
        cached.generate("Summarize the report.", system="Be brief.", seed=3, api_key_id="a"),
        cached.generate("Summarize the report.", system="Be brief.", temperature=0, api_key_id="b"),
        cached.generate("Summarize the report.", system="Be brief.", temperature=0, max_tokens=5, api_key_id="a"),
    ]
    assert [result.cache for result in misses] == [None] * 4


def test_longer_conversations_are_compared_only_when_the_policy_says_so(registry, embedder):
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    single, multi = FakeModel("single-turn"), FakeModel("multi-turn")
    single.cache_policy = SEMANTIC
    multi.cache_policy = SEMANTIC.model_copy(update={"semantic": SEMANTIC.semantic.model_copy(
        update={"multi_turn": True})})
    for model in (single, multi):
        registry.register_model(model)
        model.generate(messages=[*conversation, {"role": "user", "content": "tell me a joke"}], temperature=0)
    embedded_before = len(embedder.embedded)
    reworded = [*conversation, {"role": "user", "content": "a joke, tell me"}]
    assert single.generate(messages=reworded, temperature=0).cache is None
    assert len(embedder.embedded) == embedded_before  # not compared at all: nothing embedded
    assert multi.generate(messages=reworded, temperature=0).cache == "semantic"
    other_history = [{"role": "user", "content": "hey"}, *conversation[1:], reworded[-1]]
    assert multi.generate(messages=other_history, temperature=0).cache is None


def test_a_candidate_the_guard_refuses_is_a_miss_however_similar(cached):
    cached.generate("flights from Paris to Rome on Monday", temperature=0)
    assert cached.generate("flights from Rome to Paris on Monday", temperature=0).cache is None  # same words
    cached.generate("convert 10 miles to km", temperature=0)
    assert cached.generate("Convert 10 miles to km!", temperature=0).cache == "semantic"
    assert len(cached.calls) == 3


def test_the_question_guard_refuses_other_numbers_orders_and_swapped_slots():
    assert same_question("How can I reset my password?", "How do I reset my password")
    assert same_question("What is the capital city of France?", "capital of France")  # a word added only
    assert not same_question("Solve 3x + 7 = 22", "Solve 3x - 7 = 22")
    assert not same_question("Convert 10 miles to kilometers", "Convert 10 kilometers to miles")
    assert not same_question("List the pros of nuclear energy", "List the cons of nuclear energy")
    assert not same_question("How do I turn on 2FA?", "How do I turn off 2FA?")


def test_each_question_is_embedded_once_as_a_recorded_call_of_the_same_tenant(cached, embedder, registry):
    cached.generate("how do magnets work", temperature=0, api_key_id="key-1", user_id="ann")
    assert len(embedder.embedded) == 1  # the lookup's vector is the one stored with the answer
    cached.generate("how do magnets work", temperature=0, api_key_id="key-1", user_id="ann")  # an exact hit
    assert len(embedder.embedded) == 1
    rows = [r for r in registry.call_path.request_log.list(10) if r["model"] == "words"]
    assert [(r["source"], r["operation"], r["api_key_id"], r["user_id"]) for r in rows] == [
        ("cache", "embeddings", "key-1", "ann")]


def test_a_failing_embedding_model_is_a_miss_and_the_call_is_answered(cached, embedder):
    cached.generate("first question here", temperature=0)
    embedder.enqueue(ProviderUnavailableError("embedding upstream down"))
    answered = cached.generate("First question here?", temperature=0)
    assert answered.success and answered.cache is None and len(cached.calls) == 2
    assert cached.generate("First question here!", temperature=0).cache == "semantic"


def test_an_unknown_embedding_model_is_a_miss(registry):
    model = FakeModel("misconfigured")
    model.cache_policy = CachePolicy(semantic=SemanticPolicy(embedding_model="nobody"))
    registry.register_model(model)
    model.generate("q one", temperature=0)
    assert model.generate("one q", temperature=0).cache is None and len(model.calls) == 2


def test_clearing_a_model_removes_its_vectors(cached, registry):
    cached.generate("alpha beta gamma", temperature=0)
    cache = registry.call_path.cache
    assert cache.semantic is not None and cache.semantic.entries() == 1
    assert cache.clear(model="semantic") == 1
    assert cache.semantic.entries() == 0
    assert cached.generate("Alpha beta gamma?", temperature=0).cache is None


def test_a_group_compares_by_meaning_under_its_own_name(registry, embedder):
    from models.routing.group_config import DeploymentEntry, GroupEntry, register_groups

    registry.register_model(FakeModel("deployment"))
    register_groups(registry, [GroupEntry(name="grouped", cache=SEMANTIC,
                                          deployments=[DeploymentEntry(model="deployment")])])
    group = registry.require_model("grouped")
    group.generate("why is the sky blue", temperature=0)
    stream = group.generate_stream("Why is the sky blue?", temperature=0)
    assert list(stream) and stream.result.cache == "semantic"


@pytest.fixture(params=["sqlite", "postgres"])
def index_engine(request):
    engine = create_db_engine(request.getfixturevalue(f"{request.param}_url"))
    upgrade_schema(engine)
    yield engine
    engine.dispose()


def test_the_index_finds_the_closest_live_vectors_across_processes(index_engine):
    now = [1_000_000_000.0]
    writer = SemanticIndex(index_engine)
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, 16))  # past the first capacity (16): the matrix grows
    for number, vector in enumerate(vectors):
        writer.add("p1", f"{number:064d}", "m", f"question {number}", vector.tolist(), ttl_s=60)
    writer.add("p2", "f" * 64, "m", "elsewhere", vectors[3].tolist(), ttl_s=60)
    [found] = SemanticIndex(index_engine).closest("p1", (vectors[5] + 0.01).tolist(), threshold=0.9)
    assert (found.key, found.question) == (f"{5:064d}", "question 5") and found.similarity > 0.99
    assert SemanticIndex(index_engine).closest("p3", vectors[0].tolist(), threshold=-1) == []  # other partition
    assert len(SemanticIndex(index_engine).closest("p1", vectors[0].tolist(), threshold=-1)) == 5  # at most five
    later = SemanticIndex(index_engine, clock=lambda: now[0] + 10**9)  # a process whose clock is past expiry
    assert later.closest("p1", vectors[5].tolist(), threshold=-1) == []
    second = SemanticIndex(index_engine)
    second.closest("p1", vectors[0].tolist(), threshold=0.9)  # loads the partition
    writer.add("p1", "e" * 64, "m", "negated", (-vectors[0]).tolist(), ttl_s=60)  # stored after that load
    assert second.closest("p1", (-vectors[0]).tolist(), threshold=0.9)[0].key == "e" * 64
    assert writer.delete(model="m") == 42
    assert SemanticIndex(index_engine).closest("p1", vectors[0].tolist(), threshold=-1) == []


@pytest.mark.skipif(not sentence_embeddings.is_installed(), reason="requirements-embeddings.txt not installed")
def test_all_minilm_tells_a_paraphrase_from_a_near_miss_at_the_default_threshold(registry):
    """The real offline embedding model and default threshold: a paraphrase hits, another intent on the same
    text ("translate" against "summarize") does not."""
    registry.register_model(sentence_embeddings.SentenceEmbeddingModel())
    model = FakeModel("minilm-cached")
    model.cache_policy = CachePolicy(semantic=SemanticPolicy())
    registry.register_model(model)
    model.generate("How do I reset my password?", temperature=0)
    assert model.generate("How can I reset my password?", temperature=0).cache == "semantic"
    assert model.generate("How do I change my username?", temperature=0).cache is None
    model.generate("Summarize this article about climate change.", temperature=0)
    assert model.generate("Translate this article about climate change.", temperature=0).cache is None
