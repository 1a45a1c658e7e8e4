"""Transport faults of an upstream, on both providers through their real SDKs: a 200 that does not parse, a
connection reset, a body cut short, a stream that never ends. Each call leaves exactly one request-log row."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from core.settings import Settings
from models.base_model import BaseModel
from models.errors import MalformedResponseError, ProviderTimeoutError, ProviderUnavailableError
from models.gemini_model import GeminiModel
from models.model_registry import ModelRegistry
from models.openai_compatible import OpenAICompatibleModel
from models.pricing import PricingTable
from models.request_log import RequestLogRepository
from models.retry import RetryPolicy
from tests import gemini_wire_server, openai_wire_server
from tests.wire_server import ScriptedServer

FAST_RETRY = RetryPolicy(attempts=3, initial_delay=0.001, max_delay=0.01, jitter=0.001)
STREAM_TIMEOUT = 0.5


@dataclass
class Upstream:
    """One provider's wire server, a model on it, and the request log its calls land in."""

    server: ScriptedServer[Any]
    reply: Callable[..., Any]  # the provider's WireReply
    model: BaseModel
    log: RequestLogRepository

    def call(self, streaming: bool) -> str:
        if streaming:
            return "".join(self.model.generate_stream("hello"))
        return self.model.generate("hello")["response"]

    def only_row(self) -> dict[str, Any]:
        [row] = self.log.list()
        return row


def _openai_model(base_url: str) -> BaseModel:
    return OpenAICompatibleModel("upstream", base_url=base_url, api_key="k" * 20, timeout=5, retry=FAST_RETRY,
                                 stream_timeout=STREAM_TIMEOUT)


def _gemini_model(base_url: str) -> BaseModel:
    return GeminiModel("gemini-2.5-flash", "k" * 20, base_url=base_url, timeout=5, retry=FAST_RETRY,
                       stream_timeout=STREAM_TIMEOUT)


# provider -> (its wire server, its WireReply, a model on a server's URL)
PROVIDERS: dict[str, tuple[type[ScriptedServer[Any]], Callable[..., Any], Callable[[str], BaseModel]]] = {
    "openai_compatible": (openai_wire_server.OpenAIWireServer, openai_wire_server.WireReply, _openai_model),
    "gemini": (gemini_wire_server.GeminiWireServer, gemini_wire_server.WireReply, _gemini_model),
}


@pytest.fixture(params=sorted(PROVIDERS))
def upstream(request, sqlite_url) -> Iterator[Upstream]:
    server_class, reply, make_model = PROVIDERS[request.param]
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": sqlite_url})
    registry = ModelRegistry(settings=settings, pricing=PricingTable({}), register_defaults=False)
    with server_class() as server:
        model = make_model(server.base_url)
        registry.register_model(model)
        yield Upstream(server, reply, model, RequestLogRepository(registry.engine))


@pytest.mark.parametrize("streaming", [False, True])
def test_a_200_that_does_not_parse_is_a_provider_error_recorded_once(upstream, streaming):
    upstream.server.enqueue(upstream.reply(fault="not_json"))
    with pytest.raises(MalformedResponseError) as caught:
        upstream.call(streaming)
    error = caught.value
    assert (error.code, error.http_status) == ("provider_error", 502)
    assert "502 Bad Gateway" in error.message  # the body's start, quoted
    assert len(upstream.server.requests) == 1  # the same garbage again is not worth a retry
    row = upstream.only_row()
    assert (row["status"], row["error_type"], row["stream"]) == ("error", "provider_error", streaming)


@pytest.mark.parametrize(("fault", "streaming"), [("reset", False), ("reset", True), ("close", False),
                                                  ("close", True), ("eof", True)])
def test_a_reset_or_a_cut_before_the_first_chunk_is_retried_like_a_503(upstream, fault, streaming):
    upstream.server.enqueue(upstream.reply(fault=fault, chunks=[]), upstream.reply(text="second try"))
    assert upstream.call(streaming) == "second try"
    assert len(upstream.server.requests) == 2
    row = upstream.only_row()
    assert (row["status"], row["response"]) == ("success", "second try")


@pytest.mark.parametrize("fault", ["reset", "close"])
def test_a_stream_cut_after_its_first_chunk_fails_without_a_retry(upstream, fault):
    upstream.server.enqueue(upstream.reply(fault=fault, chunks=["partial", " answer"]))
    received = []
    with pytest.raises(ProviderUnavailableError) as caught:
        for chunk in upstream.model.generate_stream("hello"):
            received.append(chunk)
    assert received == ["partial", " answer"] and caught.value.code == "provider_unavailable"
    assert len(upstream.server.requests) == 1  # a retry would repeat the text already sent
    row = upstream.only_row()
    assert (row["status"], row["error_type"], row["response"]) == ("error", "provider_unavailable", "partial answer")


def test_retries_exhausted_on_resets_is_provider_unavailable(upstream):
    upstream.server.enqueue(*[upstream.reply(fault="reset")] * 3)
    with pytest.raises(ProviderUnavailableError, match="3 attempts"):
        upstream.call(streaming=False)
    assert len(upstream.server.requests) == 3
    assert upstream.only_row()["error_type"] == "provider_unavailable"


def test_a_stream_that_drips_forever_ends_at_the_stream_timeout_and_closes_the_connection(upstream):
    upstream.server.enqueue(upstream.reply(fault="drip", chunks=["first"], chunk_delay=0.05))
    received = []
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError, match=r"did not end within 0.5s \(STREAM_TIMEOUT\)") as caught:
        for chunk in upstream.model.generate_stream("hello"):
            received.append(chunk)
    elapsed = time.monotonic() - started
    assert STREAM_TIMEOUT <= elapsed < STREAM_TIMEOUT + 1.0, elapsed
    assert caught.value.http_status == 504 and received[0] == "first" and len(received) > 2
    assert upstream.server.wait_for_hangup(), "the upstream connection was left open"
    assert len(upstream.server.requests) == 1
    row = upstream.only_row()
    assert (row["status"], row["error_type"]) == ("error", "provider_timeout")
    assert row["response"] == "".join(received)
