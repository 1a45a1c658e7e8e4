"""The embedded llama.cpp model embeds, for real: unit vectors, exact tokens, cost 0, and a labelled set separated."""

import math

import pytest

from models.errors import ContextLengthExceededError, UnsupportedParameterError
from models.model_registry import ModelRegistry
from models.request_log import RequestLogRepository
from storage.database import get_engine

pytestmark = pytest.mark.local_model

# The labelled set behind the choice of pooling (see models/local_embeddings.py): paraphrases, then unrelated pairs,
# including one of the same topic with another intent (summarize against translate).
SIMILAR = [
    ("How do I reset my password?", "I forgot my password and need to change it."),
    ("The cat is sleeping on the sofa.", "A kitten naps on the couch."),
    ("What is the capital of France?", "Which city is France's capital?"),
    ("The stock market fell sharply today.", "Shares plunged on Wall Street this afternoon."),
    ("How do I bake bread at home?", "What is a simple recipe for homemade bread?"),
    ("The train to Berlin is delayed.", "Our Berlin train is running late."),
    ("Summarize this article about climate change.", "Give me a short summary of this climate change article."),
    ("My laptop will not turn on.", "The computer does not power up."),
]
DISSIMILAR = [
    ("How do I reset my password?", "The cat is sleeping on the sofa."),
    ("What is the capital of France?", "How do I bake bread at home?"),
    ("The stock market fell sharply today.", "A kitten naps on the couch."),
    ("The train to Berlin is delayed.", "What is a simple recipe for homemade bread?"),
    ("I forgot my password and need to change it.", "Shares plunged on Wall Street this afternoon."),
    ("Which city is France's capital?", "Our Berlin train is running late."),
    ("Summarize this article about climate change.", "Translate this article about climate change into French."),
    ("My laptop will not turn on.", "What is a simple recipe for homemade bread?"),
]


@pytest.fixture
def local(settings):
    return ModelRegistry(get_engine(settings.database_url), settings=settings).require_model("local")


def test_embeds_unit_vectors_with_exact_tokens_at_no_cost(local):
    texts = ["hello world", "a second, longer text to embed"]
    result = local.embed(texts)
    assert len(result.vectors) == 2 and result.dimensions == 576  # SmolLM2-135M's hidden size
    assert all(math.isclose(math.hypot(*vector), 1.0, rel_tol=1e-5) for vector in result.vectors)
    assert result.input_tokens == sum(local._embedder.token_counts(texts))  # special tokens included
    assert result.input_tokens >= sum(map(local.count_tokens, texts))
    assert (result.cost, result.provider) == (0.0, "local")
    (row,) = RequestLogRepository(local.call_path.request_log.engine).list()
    assert (row["operation"], row["input_tokens"], row["cost"]) == ("embeddings", result.input_tokens, 0.0)


def test_a_text_embeds_the_same_alone_or_in_a_batch(local):
    alone = local.embed("The train to Berlin is delayed.").vectors[0]
    batched = local.embed(["Something else first.", "The train to Berlin is delayed."]).vectors[1]
    assert max(abs(a - b) for a, b in zip(alone, batched, strict=True)) < 1e-5


def test_similar_pairs_score_above_dissimilar_ones(local):
    texts = sorted({text for pair in SIMILAR + DISSIMILAR for text in pair})
    vectors = dict(zip(texts, local.embed(texts).vectors, strict=True))

    def cosine(a: str, b: str) -> float:  # the vectors are unit length
        return sum(x * y for x, y in zip(vectors[a], vectors[b], strict=True))

    similar, dissimilar = [cosine(*pair) for pair in SIMILAR], [cosine(*pair) for pair in DISSIMILAR]
    assert min(similar) > max(dissimilar), (similar, dissimilar)


def test_a_text_beyond_the_context_is_refused_and_recorded(local):
    with pytest.raises(ContextLengthExceededError, match="texts.1 is"):
        local.embed(["short", "word " * 3000])
    (row,) = RequestLogRepository(local.call_path.request_log.engine).list()
    assert (row["operation"], row["status"], row["error_type"]) == ("embeddings", "error", "context_length_exceeded")


def test_dimensions_are_refused_since_the_vectors_have_a_fixed_size(local):
    with pytest.raises(UnsupportedParameterError, match="dimensions"):
        local.embed("hi", dimensions=64)
