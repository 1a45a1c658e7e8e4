"""The embedded llama.cpp model, for real: no key, no network, exact usage, streaming, cost 0."""

import pytest

from models.errors import ContextLengthExceededError
from models.local_model import LocalModel, LocalModelError
from models.model_registry import ModelRegistry
from models.request_log import RequestLogRepository
from storage.database import get_engine

pytestmark = pytest.mark.local_model


@pytest.fixture
def local(settings):
    registry = ModelRegistry(get_engine(settings.database_url), settings=settings)
    return registry.get_model("local")


def test_generates_with_exact_usage_and_zero_cost(local):
    # An ASCII answer: on multibyte output llama.cpp may sample one token past max_tokens (and we report it).
    result = local.generate("What is the capital of France?", max_tokens=8)
    assert result["response"].strip()
    assert result["input_tokens"] > 0 and 0 < result["output_tokens"] <= 8
    assert result["cost"] == 0.0 and result["provider"] == "local"
    assert result["finish_reason"] in ("stop", "length")


def test_stream_matches_the_plain_call(local):
    plain = local.generate("Name a colour.", max_tokens=6, temperature=0)
    stream = local.generate_stream("Name a colour.", max_tokens=6, temperature=0)
    chunks = list(stream)
    assert len(chunks) > 1 and "".join(chunks) == plain["response"]
    result = stream.result
    assert (result["input_tokens"], result["output_tokens"]) == (plain["input_tokens"], plain["output_tokens"])
    assert result["ttft"] is not None and result["ttft"] < result["latency"]


def test_greedy_answers_do_not_depend_on_what_ran_before(local):
    """llama.cpp's prompt cache must not change a temperature-0 answer (it did when prefixes were reused)."""
    prompts = ["Name a colour.", "Name an animal.", "Name a colour."]
    first, _, again = (local.generate(p, max_tokens=6, temperature=0)["response"] for p in prompts)
    assert first == again
    with_system = [local.generate("Name a colour.", system="Answer in French.", max_tokens=6, temperature=0)
                   for _ in range(2)]
    assert with_system[0]["response"] == with_system[1]["response"]


def test_the_shared_template_prefix_stays_cached_between_calls(local):
    local.generate("Name a colour.", max_tokens=2)
    loaded = local._loaded
    messages = [{"role": "user", "content": "Name an animal."}]
    shared = loaded._shared_prefix(messages)
    assert 0 < len(shared) < len(loaded.prompt_tokens(messages))
    loaded.prepare_cache(messages, loaded.prompt_tokens(messages))
    assert loaded.llm.n_tokens == len(shared)  # reused, not re-evaluated from scratch


def test_count_tokens_uses_the_model_tokenizer(local):
    assert local.count_tokens("hello world") == 2


def test_prompt_beyond_context_is_refused_before_llama_cpp_and_recorded(local):
    with pytest.raises(ContextLengthExceededError) as caught:
        local.generate("word " * 3000, max_tokens=4)
    assert caught.value.http_status == 400 and caught.value.details["context_window"] == local.context_window
    (row,) = RequestLogRepository(local.call_path.request_log.engine).list()
    assert (row["status"], row["error_type"]) == ("error", "context_length_exceeded")


def test_prompt_plus_max_tokens_beyond_context_is_the_same_error(local):
    fits_alone = "word " * (local.context_window - 100)
    with pytest.raises(ContextLengthExceededError, match="plus max_tokens"):
        local.generate(fits_alone, max_tokens=200)


def test_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(LocalModelError, match="LOCAL_MODEL_PATH"):
        LocalModel(str(tmp_path / "missing.gguf")).count_tokens("x")
