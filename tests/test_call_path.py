"""The managed call path: exactly one request-log row per call, whatever happens, and hooks around it."""

import pytest

from core.settings import Settings
from models.base_model import BaseModel, Capabilities
from models.errors import CallRefusedError, ContextLengthExceededError, ProviderUnavailableError
from models.messages import GenerationRequest
from models.model_registry import ModelRegistry
from models.request_log import RequestLogRepository
from storage.database import get_engine
from tests.fakes import FakeModel


@pytest.fixture
def registry(settings):
    registry = ModelRegistry(get_engine(settings.database_url), settings=settings, register_defaults=False)
    registry.register_model(FakeModel(), aliases=("fake",))
    return registry


@pytest.fixture
def log(registry):
    return RequestLogRepository(registry.engine)


def test_success_is_recorded_once_with_provider_usage_and_cost(registry, log):
    result = registry.get_model("fake").generate("one two three", system="be brief", user_id="u1", tags=["t"])
    assert result["response"] == "echo: one two three"
    assert (result["input_tokens"], result["output_tokens"], result["tokens"]) == (5, 4, 9)
    assert result["cost"] == pytest.approx((5 * 1.0 + 4 * 2.0) / 1e6)
    (row,) = log.list()
    assert row["request_id"] == result["request_id"]
    assert (row["status"], row["source"], row["user_id"], row["tags"]) == ("success", "library", "u1", ["t"])
    assert (row["input_tokens"], row["output_tokens"], row["cost"]) == (5, 4, result["cost"])


def test_provider_failure_is_recorded_once_and_raised(registry, log):
    model = registry.get_model("fake").enqueue(ProviderUnavailableError("upstream down", provider_status=503))
    with pytest.raises(ProviderUnavailableError):
        model.generate("hi")
    (row,) = log.list()
    assert (row["status"], row["error_type"]) == ("error", "provider_unavailable")
    assert row["error_message"] == "upstream down"


def test_stream_yields_chunks_then_exposes_recorded_result(registry, log):
    stream = registry.get_model("fake").generate_stream("a b c")
    chunks = list(stream)
    assert chunks == ["echo:", " a", " b", " c"]
    assert stream.result["response"] == "echo: a b c" and stream.result["ttft"] is not None
    (row,) = log.list()
    assert row["stream"] is True and row["output_tokens"] == 4


def test_abandoned_stream_is_recorded_as_cancelled(registry, log):
    stream = registry.get_model("fake").generate_stream("a b c d")
    next(stream)
    stream.close()
    (row,) = log.list()
    assert row["status"] == "cancelled" and row["response"] == "echo:"


class RecordingHook:
    def __init__(self, refuse: bool = False):
        self.refuse = refuse
        self.events: list[tuple[str, str | None]] = []

    def before_call(self, call):
        self.events.append(("before", call.request_id))
        if self.refuse:
            raise CallRefusedError("not today")

    def after_call(self, call, result):
        self.events.append(("after", result.status))


def test_hooks_run_around_the_call(registry):
    hook = RecordingHook()
    registry.add_hook(hook)
    result = registry.get_model("fake").generate("x")
    assert hook.events == [("before", result.request_id), ("after", "success")]


def test_refusing_guard_stops_the_provider_and_is_recorded(registry, log):
    registry.add_hook(RecordingHook(refuse=True))
    model = registry.get_model("fake")
    with pytest.raises(CallRefusedError):
        model.generate("x")
    assert model.calls == []
    (row,) = log.list()
    assert row["status"] == "rejected"


def test_failing_observer_does_not_fail_the_call(registry, log):
    class Broken:
        def before_call(self, call):
            pass

        def after_call(self, call, result):
            raise RuntimeError("observer bug")

    registry.add_hook(Broken())
    assert registry.get_model("fake").generate("x").success
    assert log.count() == 1


def test_prompt_logging_policy(tmp_path):
    settings = Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", "LOG_PROMPTS": "truncate", "LOG_PROMPTS_MAX_CHARS": "4"})
    registry = ModelRegistry(get_engine(settings.database_url), settings=settings, register_defaults=False)
    registry.register_model(FakeModel())
    registry.get_model("fake-model").generate("abcdefgh")
    (row,) = RequestLogRepository(registry.engine).list()
    assert row["prompt"] == "abcd" and row["response"] == "echo"


def test_unpriced_model_records_null_cost(registry, log):
    registry.register_model(FakeModel("free-for-all", pricing=None))
    assert registry.get_model("free-for-all").generate("x")["cost"] is None
    assert log.list()[0]["cost"] is None


def test_standalone_model_records_into_the_default_database(process_env):
    """The original README calls `model.generate()` on an instance directly; that is recorded too."""
    FakeModel().generate("standalone")
    assert RequestLogRepository(get_engine(process_env)).list()[0]["prompt"] == "standalone"


class _CountingFake(FakeModel):
    """Counts how often the tokenizer runs; bounds its input like a remote model (bytes + overhead)."""

    input_token_bound = BaseModel.input_token_bound

    def __init__(self, *, token_counting: bool = True) -> None:
        super().__init__("counting")
        self.counted = 0
        self.capabilities = Capabilities(token_counting=token_counting)

    def count_tokens(self, text: str) -> int:
        self.counted += 1
        return super().count_tokens(text)


def test_context_is_counted_only_when_the_free_bound_could_exceed_it():
    """The bound is one token per UTF-8 byte plus 16 per message (`MESSAGE_OVERHEAD_TOKENS`)."""
    model = _CountingFake()
    model.context_window = 40
    model.check_context(GenerationRequest.build("short", system="sys"))  # 8 bytes + 2 x 16 = 40: fits unseen
    assert model.counted == 0
    model.check_context(GenerationRequest.build("a " * 20))  # 40 bytes + 16: counted (20 tokens), and fits
    assert model.counted == 1
    with pytest.raises(ContextLengthExceededError, match="41 tokens"):
        model.check_context(GenerationRequest.build("a " * 41))


def test_models_without_exact_counting_are_left_to_the_provider():
    model = _CountingFake(token_counting=False)
    model.context_window = 2
    model.check_context(GenerationRequest.build("a " * 50))
    assert model.counted == 0
