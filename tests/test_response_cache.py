"""The exact response cache: scoped to the tenant, deterministic calls only, streams replayed, hits free and
counted once, on every level (memory, SQLite, PostgreSQL, Redis)."""

from __future__ import annotations

import uuid

import pytest

from models.cache.policy import CachePolicy
from models.cache.response_cache import ResponseCache
from models.cache.stores import MemoryLevel, RedisCacheBackend, SqlCacheBackend
from models.errors import ProviderUnavailableError
from models.model_registry import ModelRegistry
from models.routing.group_config import DeploymentEntry, GroupEntry, register_groups
from monitoring import rollup_reads
from monitoring.budgets import BudgetService, BudgetSpec
from storage.database import create_db_engine, upgrade_schema
from tests.conftest import redis_client
from tests.fakes import FakeModel

POLICY = CachePolicy(ttl_s=60)


@pytest.fixture
def registry(settings) -> ModelRegistry:
    return ModelRegistry(settings.database_url, settings=settings, register_defaults=False)


@pytest.fixture
def cached(registry) -> FakeModel:
    model = FakeModel("cached")
    model.cache_policy = POLICY
    registry.register_model(model)
    return model


def test_identical_deterministic_requests_hit_for_the_same_key_and_miss_for_another(cached):
    first = cached.generate("hello there", temperature=0, api_key_id="key-a")
    again = cached.generate("hello there", temperature=0, api_key_id="key-a")
    other_key = cached.generate("hello there", temperature=0, api_key_id="key-b")
    assert (first.cache, again.cache, other_key.cache) == (None, "exact", None)
    assert again.response == first.response and len(cached.calls) == 2
    assert cached.generate("hello there", seed=7, api_key_id="key-a").cache is None  # other parameters: a miss
    assert cached.generate("hello there", seed=7, api_key_id="key-a").cache == "exact"  # a seed is deterministic


def test_the_system_prompt_and_non_deterministic_calls_are_never_confused(cached):
    cached.generate("hello", system="Answer in French.", temperature=0)
    assert cached.generate("hello", system="Answer in German.", temperature=0).cache is None
    cached.generate("hello", temperature=0.7)
    assert cached.generate("hello", temperature=0.7).cache is None  # not deterministic: never cached
    assert len(cached.calls) == 4


def test_a_hit_is_one_free_row_whose_tokens_are_not_counted(cached, registry):
    original = cached.generate("count me once", temperature=0, request_id="original")
    hit = cached.generate("count me once", temperature=0, request_id="hit")
    log = registry.call_path.request_log
    row = log.get("hit")
    assert row is not None
    assert (row["cache"], row["cost"], row["cost_saved"]) == ("exact", 0.0, original.cost)
    assert (row["input_tokens"], row["output_tokens"]) == (None, None)
    assert (row["saved_input_tokens"], row["saved_output_tokens"]) == (original.input_tokens, original.output_tokens)
    assert (hit.cost, hit.cost_saved, hit.tokens) == (0.0, original.cost, None)
    [totals] = rollup_reads.totals_by_model(registry.engine, None, None).values()
    assert totals["n_success"] == 2 and totals["n_cache_hits"] == 1
    assert totals["total_tokens"] == original.tokens and totals["cost"] == pytest.approx(original.cost)
    assert totals["cost_saved"] == pytest.approx(original.cost)


def test_a_streamed_miss_is_replayed_as_a_stream(cached):
    stream = cached.generate_stream("one two three", temperature=0)
    first_chunks = list(stream)
    replay = cached.generate_stream("one two three", temperature=0)
    assert list(replay) == first_chunks and len(first_chunks) > 1
    assert replay.result.cache == "exact" and replay.from_cache and not stream.from_cache
    assert cached.generate("one two three", temperature=0).cache == "exact"  # and as a plain answer
    assert len(cached.calls) == 1


def test_failures_are_not_kept_and_hits_are_served_whatever_the_breaker_or_budget(cached, registry):
    cached.enqueue(ProviderUnavailableError("503"))
    with pytest.raises(ProviderUnavailableError):
        cached.generate("x", temperature=0)
    cached.generate("x", temperature=0)  # the retry answers, and is kept
    for _ in range(5):
        registry.call_path.breakers.record("cached", failed=True)
    BudgetService(registry.engine).create(BudgetSpec(name="spent", scope="global", period="daily",
                                                     limit_usd=1e-12, hard_limit=True))
    assert cached.generate("x", temperature=0).cache == "exact"  # open breaker, exhausted budget: still served


def test_request_modes_read_write_and_off(cached):
    cached.generate("a", temperature=0, cache="read")  # reads only: not kept
    assert cached.generate("a", temperature=0, cache="off").cache is None
    cached.generate("a", temperature=0, cache="write")
    assert cached.generate("a", temperature=0, cache="write").cache is None  # writes only: no hit
    assert cached.generate("a", temperature=0, cache="read").cache == "exact"
    assert len(cached.calls) == 4


def test_expired_answers_miss(registry):
    now = [1_000.0]
    model = FakeModel("clocked")
    model.cache_policy = CachePolicy(ttl_s=10)
    registry.register_model(model)
    registry.call_path.cache.clock = lambda: now[0]
    model.generate("q", temperature=0)
    now[0] += 9
    assert model.generate("q", temperature=0).cache == "exact"
    now[0] += 2
    assert model.generate("q", temperature=0).cache is None  # expired: called, and kept for 10 s again
    now[0] += 11
    assert model.generate("q", temperature=0, cache_ttl=100).cache is None  # kept for the request's own 100 s
    now[0] += 50
    assert model.generate("q", temperature=0).cache == "exact"


def test_a_group_caches_under_its_own_name_and_a_hit_calls_no_deployment(registry):
    first, second = FakeModel("first"), FakeModel("second")
    for model in (first, second):
        registry.register_model(model)
    register_groups(registry, [GroupEntry(name="chat", cache=POLICY, deployments=[
        DeploymentEntry(model="first"), DeploymentEntry(model="second")])])
    group = registry.require_model("chat")
    answered = group.generate("hi", temperature=0)
    hit = group.generate("hi", temperature=0, request_id="group-hit")
    assert hit.cache == "exact" and hit.response == answered.response
    assert len(first.calls) + len(second.calls) == 1
    row = registry.call_path.request_log.get("group-hit")
    assert row is not None and (row["model"], row["cache"]) == ("chat", "exact")


def test_the_api_reports_hits_and_clears(app, client, svc):
    model = FakeModel("api-cached")
    model.cache_policy = POLICY
    svc.registry.register_model(model)
    body = {"model": "api-cached", "prompt": "hi", "temperature": 0}
    assert client.post("/api/generate", json=body).json["cache"] is None
    generated = client.post("/api/generate", json=body).json
    assert (generated["cache"], generated["cost"]) == ("exact", 0.0) and generated["cost_saved"] > 0
    chat = {"model": "api-cached", "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}
    assert client.post("/v1/chat/completions", json=chat).headers["X-Cache"] == "hit"
    assert client.post("/v1/chat/completions", json=chat,
                       headers={"Cache-Control": "no-cache"}).headers["X-Cache"] == "miss"
    streamed = client.post("/v1/chat/completions", json={**chat, "stream": True})
    assert streamed.headers["X-Cache"] == "hit" and "[DONE]" in streamed.text
    report = client.get("/api/cache").json
    assert report["hits"] == 3 and report["entries"] == 1 and report["cost_saved"] > 0
    assert client.delete("/api/cache?model=api-cached").json == {"deleted": 1}
    assert client.post("/api/generate", json=body).json["cache"] is None
    assert client.delete("/api/cache?key=not-a-key").status_code == 400
    assert 'ai_cache_hit_rate{model="api-cached"}' in client.get("/metrics").text


def _backends(kind: str, request: pytest.FixtureRequest):
    if kind == "redis":
        client = redis_client()
        backend = RedisCacheBackend(client, prefix=f"aimm:test-cache:{uuid.uuid4().hex}:")
        request.addfinalizer(client.close)
        request.addfinalizer(backend.delete)  # finalizers run last-in first-out: delete, then close
        return backend
    engine = create_db_engine(request.getfixturevalue(f"{kind}_url"))
    upgrade_schema(engine)
    request.addfinalizer(engine.dispose)
    return SqlCacheBackend(engine)


@pytest.mark.parametrize("kind", ["sqlite", "postgres", "redis"])
def test_every_backend_stores_expires_and_clears(kind, request):
    backend = _backends(kind, request)
    backend.put("a" * 64, "m1", '{"x": 1}', 60)
    backend.put("b" * 64, "m2", '{"x": 2}', 60)
    backend.put("a" * 64, "m1", '{"x": 3}', 60)  # the same key again: replaced
    assert backend.get("a" * 64) == '{"x": 3}' and backend.totals() == (2, 16)
    assert backend.delete(model="m1") == 1 and backend.get("a" * 64) is None
    assert backend.delete() == 1 and backend.totals() == (0, 0)


def test_the_memory_level_is_bounded_by_bytes_and_trusted_only_while_fresh():
    now = [0.0]
    memory = MemoryLevel(max_bytes=10, fresh_s=5, clock=lambda: now[0])
    memory.put("a", "12345")
    memory.put("b", "12345")
    memory.get("a")  # a is now the most recently used
    memory.put("c", "12345")  # evicts b, the least recently used
    assert (memory.get("a"), memory.get("b"), memory.get("c")) == ("12345", None, "12345")
    memory.put("huge", "x" * 11)  # larger than the level: not kept
    assert memory.get("huge") is None
    now[0] = 6
    assert memory.get("a") is None  # stale: the shared level decides


def test_an_unreachable_backend_is_a_miss_not_a_failure(cached, registry):
    class Down:
        def get(self, key):
            raise ConnectionError("redis is down")

        def put(self, *args):
            raise ConnectionError("redis is down")

    registry.call_path.cache = ResponseCache(Down(), default_policy=POLICY)
    assert cached.generate("q", temperature=0).success
    assert cached.generate("q", temperature=0).cache is None


def test_warm_fills_the_cache_from_a_jsonl_file(app, svc, runner, tmp_path):
    model = FakeModel("warmed")
    model.cache_policy = POLICY
    svc.registry.register_model(model)
    requests = tmp_path / "warm.jsonl"
    requests.write_text('{"model": "warmed", "prompt": "a", "temperature": 0}\n\n'
                        '{"model": "warmed", "prompt": "a", "temperature": 0}\n'
                        '{"model": "warmed", "prompt": "b", "temperature": 0.9}\n')
    outcome = runner.invoke(args=["cache", "warm", str(requests)])
    assert outcome.exit_code == 0, outcome.output
    assert "1 already cached, 1 called and kept, 1 not cacheable" in outcome.output
    assert model.generate("a", temperature=0).cache == "exact" and len(model.calls) == 1
    (tmp_path / "bad.jsonl").write_text('{"model": "warmed"}\n')
    refused = runner.invoke(args=["cache", "warm", str(tmp_path / "bad.jsonl")])
    assert refused.exit_code != 0 and "line 1" in refused.output


def test_warm_runs_as_a_background_job_reporting_progress(app, svc, client):
    import time

    model = FakeModel("warmed")
    model.cache_policy = POLICY
    svc.registry.register_model(model)
    requests = [{"model": "warmed", "prompt": p, "temperature": 0} for p in ("a", "b", "a")]
    response = client.post("/api/cache/warm", json={"requests": requests})
    assert response.status_code == 202, response.get_json()
    deadline = time.monotonic() + 10
    while (job := client.get(f"/api/jobs/{response.get_json()['job_id']}").get_json())["status"] != "succeeded":
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.02)
    assert job["result"] == {"already cached": 1, "called and kept": 2, "not cacheable": 0}
    assert job["progress"] == {"done": 3, "total": 3} and len(model.calls) == 2
    assert model.generate("b", temperature=0).cache == "exact"
    unknown = client.post("/api/cache/warm", json={"requests": [{"model": "nope", "prompt": "a"}]})
    assert unknown.status_code == 404 and unknown.get_json()["error"]["code"] == "unknown_model"
    assert client.post("/api/cache/warm", json={"requests": []}).status_code == 400


def test_a_clearing_in_one_process_empties_every_processs_memory_level_at_once(sqlite_url):
    """On SQLite a stamp tells each process; elsewhere an entry in memory is trusted for 60 s at most."""
    from models.cache.response_cache import ResponseCache
    from models.messages import GenerationRequest
    from models.params import CallContext, GenerationParams
    from models.results import GenerationResult
    from storage.change_stamp import ChangeStamp

    model = FakeModel("shared")
    model.cache_policy = POLICY
    request = GenerationRequest.build("q", params=GenerationParams(temperature=0))
    context = CallContext()
    caches = []
    for _ in range(2):  # two processes: each its own engine, memory level and stamp reader
        engine = create_db_engine(sqlite_url)
        caches.append(ResponseCache(SqlCacheBackend(engine), cleared=ChangeStamp(engine, "cache")))
    first, second = caches
    first.store(model, request, context, GenerationResult("answer", "shared", "fake", "r1"), ["answer"])
    assert first.lookup(model, request, context).hit is not None  # now in the first process's memory too
    assert second.clear() == 1
    assert first.lookup(model, request, context).hit is None
