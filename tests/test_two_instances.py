"""Two service instances (two gunicorn masters on their own ports) against one PostgreSQL and one Redis: a breaker
opened through one is open on the other, a rate limit is shared, a cache entry written through one is hit through
the other, and every request is exactly one request-log row.

The load test across two instances, with throughput against one, is benchmarks/bench_two_instances.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from benchmarks.bench_load_postgres import throwaway_schema
from benchmarks.bench_two_instances import call, instances
from models.request_log import request_log
from storage.database import get_engine
from tests.conftest import POSTGRES_AVAILABLE, POSTGRES_URL, redis_client
from tests.openai_wire_server import OpenAIWireServer, WireReply

pytestmark = pytest.mark.skipif(not POSTGRES_AVAILABLE or not os.environ.get("TEST_REDIS_URL"),
                                reason="needs PostgreSQL and Redis (TEST_POSTGRES_URL, TEST_REDIS_URL)")
RATE_LIMIT = 30  # per key and minute, through Redis
RUN = uuid.uuid4().hex[:8]  # fresh model names: no breaker or cache state in Redis from earlier runs
PLAIN, FLAKY, CACHED = f"plain-{RUN}", f"flaky-{RUN}", f"cached-{RUN}"


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[OpenAIWireServer, OpenAIWireServer]]:
    with OpenAIWireServer() as healthy, OpenAIWireServer() as failing:
        healthy.always(WireReply(text="pong"))
        failing.always(WireReply(status=500, message="upstream down"))
        yield healthy, failing


@pytest.fixture(scope="module")
def cluster(upstreams, tmp_path_factory) -> Iterator[tuple[list[int], str]]:
    redis_client().close()  # skips when Redis does not answer
    healthy, failing = upstreams

    def model(name: str, server: OpenAIWireServer, **extra) -> dict:
        return {"name": name, "provider": "openai_compatible", "model": "fake-gpt", "base_url": server.base_url,
                "max_attempts": 1, **extra}

    models = [model(PLAIN, healthy), model(FLAKY, failing), model(CACHED, healthy, cache={"ttl_s": 600})]
    assert POSTGRES_URL is not None
    with throwaway_schema(POSTGRES_URL) as url:
        get_engine(url).dispose()  # migrate once, before both instances start
        with instances(2, database_url=url, redis_url=os.environ["TEST_REDIS_URL"], models=models, workers=2,
                       tmp=tmp_path_factory.mktemp("two"), env={"RATE_LIMIT": f"{RATE_LIMIT}/minute"}) as ports:
            yield ports, url


def test_a_breaker_opened_through_one_instance_is_open_on_the_other(cluster, upstreams):
    (first, second), _ = cluster
    failing = upstreams[1]
    statuses = [call(first, "/api/generate", {"prompt": "hi", "model": FLAKY})[0] for _ in range(5)]
    assert all(status >= 500 for status in statuses), statuses  # 5 upstream failures: the default policy opens
    sent = len(failing.completions())
    time.sleep(0.6)  # another host's breaker snapshot is at most 0.5 s old
    status, body, _ = call(second, "/api/generate", {"prompt": "hi", "model": FLAKY})
    assert status == 503 and body["error"]["code"] == "circuit_open"
    assert len(failing.completions()) == sent  # refused without calling the upstream


def test_a_rate_limit_is_shared(cluster):
    (first, second), _ = cluster
    _, key, _ = call(first, "/api/keys", {"name": f"limited-{uuid.uuid4().hex[:6]}"})
    if time.time() % 60 > 55:  # the limit's window is the clock minute: do not straddle two
        time.sleep(61 - time.time() % 60)
    statuses = [call(port, "/api/generate", {"prompt": "hi", "model": PLAIN}, key["key"])[0]
                for _ in range(RATE_LIMIT // 2 + 3) for port in (first, second)]
    assert statuses.count(200) == RATE_LIMIT and statuses[RATE_LIMIT:] == [429] * 6


def test_a_cache_entry_written_through_one_instance_is_hit_through_the_other(cluster, upstreams):
    (first, second), _ = cluster
    healthy = upstreams[0]
    chat = {"model": CACHED, "temperature": 0, "messages": [{"role": "user", "content": f"cache me {RUN}"}]}
    _, written, headers = call(first, "/v1/chat/completions", chat)
    sent = len(healthy.completions())
    status, hit, hit_headers = call(second, "/v1/chat/completions", chat)
    assert status == 200 and (headers["X-Cache"], hit_headers["X-Cache"]) == ("miss", "hit")
    assert hit["choices"][0]["message"]["content"] == written["choices"][0]["message"]["content"]
    assert len(healthy.completions()) == sent


def test_every_request_is_exactly_one_request_log_row(cluster):
    ports, url = cluster
    _, key, _ = call(ports[0], "/api/keys", {"name": f"rows-{uuid.uuid4().hex[:6]}"})
    prompts = [f"row {RUN} {index}" for index in range(RATE_LIMIT - 5)]  # within the key's limit
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: call(ports[i % 2], "/api/generate", {"prompt": prompts[i], "model": PLAIN},
                                               key["key"]), range(len(prompts))))
    assert [status for status, _, _ in answers] == [200] * len(prompts)
    engine = get_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(select(request_log.c.request_id, func.count()).where(
            request_log.c.model == PLAIN, request_log.c.prompt.like(f"row {RUN} %")).group_by(
            request_log.c.request_id)).all()
    engine.dispose()
    assert sorted(request_id for request_id, _ in rows) == sorted(body["request_id"] for _, body, _ in answers)
    assert {count for _, count in rows} == {1}
