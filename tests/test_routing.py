"""Model groups: strategies, failover, fallbacks and degradation, breakers on the call path, one row per attempt.

Deployments are fake models here, except where the wire format matters (faults on the OpenAI-compatible test
server, driven through the real `openai` SDK) and one test on the real embedded model.
"""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
from scipy.stats import chisquare

from core.settings import Settings
from models.errors import InvalidRequestError, ProviderUnavailableError, RateLimitedError
from models.model_registry import ModelRegistry
from models.models_file import ModelsFileError
from models.openai_compatible import OpenAICompatibleModel
from models.routing.breakers import CircuitOpenError
from models.routing.deployment_limits import DeploymentsBusyError
from models.routing.group import ModelGroup
from models.routing.group_config import DeploymentEntry, GroupEntry, register_groups
from models.routing.strategies import Deployment, DeploymentStats, Orderer
from tests.fakes import FakeModel
from tests.openai_wire_server import OpenAIWireServer, WireReply


@pytest.fixture
def registry(settings) -> ModelRegistry:
    return ModelRegistry(settings.database_url, settings=settings, register_defaults=False)


def group_of(registry: ModelRegistry, *models: FakeModel | OpenAICompatibleModel, strategy: str = "priority",
             fallbacks: tuple[str, ...] = (), name: str = "chat") -> ModelGroup:
    for model in models:
        registry.register_model(model)
    entry = GroupEntry(name=name, strategy=strategy,  # type: ignore[arg-type]
                       deployments=[DeploymentEntry(model=m.name, priority=i) for i, m in enumerate(models)],
                       fallbacks=list(fallbacks))
    register_groups(registry, [entry])
    group = registry.require_model(name)
    assert isinstance(group, ModelGroup)
    return group


def rows_of(registry: ModelRegistry, client_request_id: str) -> list[dict]:
    rows = registry.call_path.request_log.list(client_request_id=client_request_id)
    return sorted(rows, key=lambda row: row["attempt"])


def test_a_retryable_failure_moves_to_the_next_deployment_and_every_attempt_is_one_row(registry):
    first, second = FakeModel("first"), FakeModel("second")
    first.enqueue(ProviderUnavailableError("503 from upstream"))
    group = group_of(registry, first, second)
    result = group.generate("hello there", request_id="client-1")
    assert (result.response, result.model, result.group, result.attempts) == ("echo: hello there", "second",
                                                                                "chat", 2)
    assert result.request_id == "client-1" and not result.degraded
    rows = rows_of(registry, "client-1")
    assert [(r["model"], r["status"], r["attempt"], r["route_group"]) for r in rows] == [
        ("first", "error", 0, "chat"), ("second", "success", 1, "chat")]
    assert rows[0]["error_type"] == "provider_unavailable" and rows[0]["cost"] is None
    assert rows[1]["cost"] == pytest.approx(result.cost) and len({r["request_id"] for r in rows}) == 2


def test_a_failure_of_the_request_itself_is_not_retried_elsewhere(registry):
    first, second = FakeModel("first"), FakeModel("second")
    first.enqueue(InvalidRequestError("bad request"))
    group = group_of(registry, first, second)
    with pytest.raises(InvalidRequestError):
        group.generate("hi", request_id="client-2")
    assert second.calls == [] and len(rows_of(registry, "client-2")) == 1


def test_every_deployment_down_degrades_to_the_local_fallback(registry):
    first, second, local = FakeModel("first"), FakeModel("second"), FakeModel("embedded")
    local.provider = "local"
    first.enqueue(RateLimitedError("429"))
    second.enqueue(ProviderUnavailableError("503"))
    registry.register_model(local)
    group = group_of(registry, first, second, fallbacks=("embedded",))
    result = group.generate("still there?", request_id="client-3")
    assert (result.model, result.attempts, result.degraded) == ("embedded", 3, True)
    rows = rows_of(registry, "client-3")
    assert [(r["model"], r["status"], r["degraded"]) for r in rows] == [
        ("first", "error", False), ("second", "error", False), ("embedded", "success", True)]


def test_a_fallback_group_is_tried_after_the_deployments(registry):
    first, backup = FakeModel("first"), FakeModel("backup")
    first.enqueue(ProviderUnavailableError("503"))
    registry.register_model(first)
    registry.register_model(backup)
    register_groups(registry, [
        GroupEntry(name="main", deployments=[DeploymentEntry(model="first")], fallbacks=["spare"]),
        GroupEntry(name="spare", deployments=[DeploymentEntry(model="backup")]),
    ])
    result = registry.require_model("main").generate("x")
    assert (result.model, result.group, result.attempts) == ("backup", "main", 2)


def test_a_prompt_too_long_for_a_deployment_goes_to_a_larger_window_without_a_call(registry):
    small, large = FakeModel("small"), FakeModel("large")
    small.context_window, large.context_window = 5, 1000
    group = group_of(registry, small, large)
    result = group.generate("one two three four five six seven eight", request_id="client-4")
    assert result.model == "large" and small.calls == []
    assert [r["model"] for r in rows_of(registry, "client-4")] == ["large"]
    assert group.generate("short", request_id="client-5").model == "small"


def test_a_stream_fails_over_before_its_first_chunk_but_never_after(registry):
    first, second = FakeModel("first"), FakeModel("second")
    first.enqueue(ProviderUnavailableError("503"))
    group = group_of(registry, first, second)
    stream = group.generate_stream("a b c", request_id="client-6")
    assert "".join(stream) == "echo: a b c" and stream.result.model == "second"

    class CutAfterFirstChunk(FakeModel):
        def execute(self, request, usage):
            yield "partial"
            raise ProviderUnavailableError("connection reset mid-stream")

    cut, spare = CutAfterFirstChunk("cut"), FakeModel("spare")
    group = group_of(registry, cut, spare, name="cutting")
    stream = group.generate_stream("a b c", request_id="client-7")
    assert next(stream) == "partial"
    with pytest.raises(ProviderUnavailableError):
        list(stream)
    assert spare.calls == []
    [row] = rows_of(registry, "client-7")
    assert (row["model"], row["status"], row["response"]) == ("cut", "error", "partial")


def test_an_open_breaker_fails_fast_without_calling_the_provider(registry):
    model = FakeModel("flaky")
    registry.register_model(model)
    model.enqueue(*[ProviderUnavailableError("503")] * 5)
    for _ in range(5):
        with pytest.raises(ProviderUnavailableError):
            model.generate("x")
    calls = len(model.calls)
    started = time.perf_counter()
    with pytest.raises(CircuitOpenError) as refused:
        model.generate("x")
    assert time.perf_counter() - started < 0.005
    assert len(model.calls) == calls  # the provider saw nothing
    assert refused.value.http_status == 503 and refused.value.details["retry_after"] >= 1
    assert registry.call_path.request_log.list(1)[0]["status"] == "rejected"


def test_a_group_skips_a_deployment_whose_breaker_is_open(registry):
    first, second = FakeModel("first"), FakeModel("second")
    group = group_of(registry, first, second)
    first.enqueue(*[ProviderUnavailableError("503")] * 5)
    for _ in range(5):
        group.generate("x")
    calls = len(first.calls)
    result = group.generate("x", request_id="client-8")
    assert (result.model, result.attempts) == ("second", 1) and len(first.calls) == calls
    assert [r["model"] for r in rows_of(registry, "client-8")] == ["second"]


def test_the_weighted_split_follows_the_weights():
    a, b = FakeModel("a"), FakeModel("b")
    orderer = Orderer("weighted", [Deployment(a, weight=3), Deployment(b, weight=1)], DeploymentStats(),
                      random.Random(7))
    picks = Counter(next(orderer.order()).name for _ in range(4000))
    assert chisquare([picks["a"], picks["b"]], [3000, 1000]).pvalue > 0.001
    assert sorted(d.name for d in orderer.order()) == ["a", "b"]  # failover still reaches every deployment


def test_round_robin_and_least_busy():
    a, b = FakeModel("a"), FakeModel("b")
    stats = DeploymentStats()
    rr = Orderer("round_robin", [Deployment(a), Deployment(b)], stats)
    assert [next(rr.order()).name for _ in range(4)] == ["a", "b", "a", "b"]
    busy = Orderer("least_busy", [Deployment(a), Deployment(b)], stats)
    stats.started("a")
    assert {next(busy.order()).name for _ in range(20)} == {"b"}
    stats.ended("a")
    assert {next(busy.order()).name for _ in range(40)} == {"a", "b"}


def test_cost_picks_the_cheapest_deployment_that_fits(registry):
    from models.pricing import ModelPricing

    dear = FakeModel("dear", pricing=ModelPricing(input_per_million=10, output_per_million=30))
    cheap = FakeModel("cheap", pricing=ModelPricing(input_per_million=0.1, output_per_million=0.4))
    group = group_of(registry, dear, cheap, strategy="cost")
    assert group.generate("hello").model == "cheap"
    cheap.context_window = 3
    assert group.generate("a prompt longer than three tokens").model == "dear"


def test_least_latency_picks_the_faster_server(registry):
    with OpenAIWireServer() as slow, OpenAIWireServer() as fast:
        slow.always(WireReply(text="slow", delay=0.15))
        models = [OpenAICompatibleModel(name, base_url=server.base_url, model="m", max_attempts=1)
                  for name, server in (("slow", slow), ("fast", fast))]
        for model in models:  # a first call builds the SDK's client: not the latency to rank by
            model.generate("warm up", max_tokens=5)
        group = group_of(registry, *models, strategy="least_latency")
        answered = Counter(group.generate("hi", max_tokens=5).model for _ in range(12))
    assert answered["slow"] == 1 and answered["fast"] == 11  # each measured once, then the faster one


def test_one_of_two_deployments_answering_503_costs_clients_nothing(registry):
    with OpenAIWireServer() as broken, OpenAIWireServer() as healthy:
        broken.always(WireReply(status=503))
        models = [OpenAICompatibleModel(name, base_url=server.base_url, model="m", max_attempts=1)
                  for name, server in (("broken", broken), ("healthy", healthy))]
        group = group_of(registry, *models, strategy="weighted")
        results = [group.generate("hi", max_tokens=3) for _ in range(1000)]
        broken_calls = len(broken.requests)
    assert all(r.success and r.model == "healthy" for r in results)
    assert broken_calls == 5  # the breaker opened at its fifth failure; nothing more reached it


def test_a_stream_cut_after_its_first_chunk_ends_with_an_error_event_and_an_error_row(app, client, tmp_path):
    from api.services import services

    with OpenAIWireServer() as upstream, OpenAIWireServer() as spare:
        upstream.always(WireReply(text="Hello there friend", fault="reset"))
        registry = services(app).registry
        models = [OpenAICompatibleModel(name, base_url=server.base_url, model="m", max_attempts=1)
                  for name, server in (("cut", upstream), ("spare", spare))]
        group_of(registry, *models, name="cutgroup")
        body = client.post("/api/generate", json={"model": "cutgroup", "prompt": "hi", "stream": True}).text
        v1 = client.post("/v1/chat/completions", json={"model": "cutgroup", "stream": True,
                                                        "messages": [{"role": "user", "content": "hi"}]}).text
        spare_calls = len(spare.requests)
    assert '"delta": "Hello"' in body and '"status": "error"' in body and '"done": true' in body
    assert '"content": "Hello"' in v1 and '"error"' in v1 and "[DONE]" not in v1
    assert '"model": "cut"' in v1  # the chunks name the deployment that answered, not the group
    assert spare_calls == 0
    rows = registry.call_path.request_log.list(2, model="cut")
    assert [r["status"] for r in rows] == ["error", "error"] and all(r["route_group"] == "cutgroup" for r in rows)


def test_the_api_answers_a_group_with_its_deployment_and_an_open_breaker_with_503(app, client, svc):
    first, second = FakeModel("first"), FakeModel("second")
    first.enqueue(ProviderUnavailableError("503"))
    group_of(svc.registry, first, second)
    response = client.post("/v1/chat/completions", json={"model": "chat",
                                                          "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    assert (response.json["model"], response.json["group"], response.json["attempts"]) == ("second", "chat", 2)
    assert (response.headers["X-Group"], response.headers["X-Attempts"], response.headers["X-Degraded"]) == (
        "chat", "2", "false")
    attempts = client.get(f"/api/requests?client_request_id={response.headers['X-Request-ID']}").json["requests"]
    assert sorted((r["attempt"], r["model"], r["status"]) for r in attempts) == [(0, "first", "error"),
                                                                                  (1, "second", "success")]
    streamed = client.post("/v1/chat/completions", json={"model": "chat", "stream": True,
                                                          "messages": [{"role": "user", "content": "hi"}]})
    assert streamed.headers["X-Model"] == "first" and '"model": "first"' in streamed.text
    generated = client.post("/api/generate", json={"model": "chat", "prompt": "hi"}).json
    assert (generated["model"], generated["group"], generated["attempts"]) == ("first", "chat", 1)

    lone = FakeModel("lone")
    svc.registry.register_model(lone)
    lone.enqueue(*[ProviderUnavailableError("503")] * 5)
    for _ in range(5):
        assert client.post("/api/generate", json={"model": "lone", "prompt": "x"}).status_code == 502
    refused = client.post("/api/generate", json={"model": "lone", "prompt": "x"})
    assert refused.status_code == 503 and refused.json["error"]["code"] == "circuit_open"
    assert int(refused.headers["Retry-After"]) >= 1

    health = {m["model"]: m for m in client.get("/api/health/models").json["models"]}
    assert health["lone"]["breaker"] == "open" and health["lone"]["score"] == 0
    assert health["second"]["breaker"] == "closed" and health["second"]["score"] == 100
    assert "chat" not in health  # a group has no provider of its own
    metrics = client.get("/metrics").text
    assert 'ai_circuit_state{model="lone"} 2.0' in metrics
    assert 'ai_model_health_score{model="lone"} 0.0' in metrics


def test_degradation_to_the_real_embedded_model_with_no_remote_reachable(tmp_path):
    from tests.test_models_file import settings_for

    (tmp_path / "models.yaml").write_text(
        "models:\n"
        "  - {name: remote, provider: openai_compatible, base_url: 'http://127.0.0.1:9/v1', max_attempts: 1}\n"
        "groups:\n"
        "  - {name: chat, deployments: [{model: remote}], fallbacks: [local]}\n")
    registry = ModelRegistry(settings=settings_for(tmp_path, str(tmp_path / "models.yaml")))
    result = registry.require_model("chat").generate("Say hi.", max_tokens=4)
    assert result.success and result.degraded and result.provider == "local" and result.response
    assert [r["degraded"] for r in rows_of(registry, result.request_id)] == [False, True]


@pytest.mark.parametrize(("groups", "problem"), [
    ("[{name: g, deployments: [{model: nowhere}]}]",
     "groups[0] (name 'g'): field 'deployments.0.model': 'nowhere' is not a registered model"),
    ("[{name: g, strategy: fastest, deployments: [{model: local}]}]",
     "groups[0] (name 'g'): field 'strategy'"),
    ("[{name: g, deployments: []}]", "groups[0] (name 'g'): field 'deployments'"),
    ("[{name: a, deployments: [{model: local}], fallbacks: [b]}, {name: b, deployments: [{model: local}], "
     "fallbacks: [a]}]", "field 'fallbacks.0': 'a' leads back to group"),
    ("[{name: g, deployments: [{model: local}], circuit_breaker: {failures: 0}}]",
     "groups[0] (name 'g'): field 'circuit_breaker.failures'"),
])
def test_an_invalid_group_stops_start_up_naming_file_group_and_field(tmp_path, groups, problem):
    path = tmp_path / "models.yaml"
    path.write_text(f"groups: {groups}\n")
    settings = Settings.from_env(environ={}, env_file=None, overrides={
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}", "MODELS_FILE": str(path)})
    with pytest.raises(ModelsFileError) as caught:
        ModelRegistry(settings=settings)
    assert str(path) in str(caught.value) and problem in str(caught.value)


def test_a_deployment_past_its_rpm_is_skipped_and_all_full_answers_429(registry):
    first, second = FakeModel("first"), FakeModel("second")
    for model in (first, second):
        registry.register_model(model)
    register_groups(registry, [GroupEntry(name="limited", strategy="priority", deployments=[
        DeploymentEntry(model="first", rpm=2), DeploymentEntry(model="second", priority=1, rpm=1)])])
    group = registry.require_model("limited")
    assert [group.generate("x").model for _ in range(3)] == ["first", "first", "second"]
    with pytest.raises(DeploymentsBusyError) as refused:
        group.generate("x")
    assert refused.value.http_status == 429 and refused.value.details["retry_after"] >= 1


def test_a_group_embeds_with_failover(registry):
    first, second = FakeModel("first"), FakeModel("second")
    first.enqueue(ProviderUnavailableError("503"))
    group = group_of(registry, first, second)
    result = group.embed(["a", "b"], request_id="client-9")
    assert result.model == "second" and len(result.vectors) == 2 and result.request_id == "client-9"
    assert [(r["model"], r["operation"], r["status"]) for r in rows_of(registry, "client-9")] == [
        ("first", "embeddings", "error"), ("second", "embeddings", "success")]



def test_health_probes_call_each_group_member_once_and_respect_open_breakers(registry):
    from models.routing.probes import HealthProbes

    first, second = FakeModel("first"), FakeModel("second")
    group_of(registry, first, second)
    assert HealthProbes(registry).probe() == {"first": "success", "second": "success"}
    assert [r["source"] for r in registry.call_path.request_log.list(2)] == ["probe", "probe"]
    assert first.calls[0].params.max_tokens == 1
    for _ in range(5):
        registry.call_path.breakers.record("first", failed=True)
    assert HealthProbes(registry).probe() == {"first": "circuit_open", "second": "success"}
    assert len(first.calls) == 1


def test_a_budget_aware_group_goes_cheapest_first_past_its_threshold(settings):
    from models.call_path import CallPath
    from models.pricing import ModelPricing
    from models.request_log import RequestLogRepository
    from storage.database import get_engine

    shares = {"monthly": 0.5}
    engine = get_engine(settings.database_url)
    registry = ModelRegistry(engine, settings=settings, register_defaults=False,
                             call_path=CallPath(RequestLogRepository(engine), budget_share=shares.get))
    registry.register_model(FakeModel("dear", pricing=ModelPricing(input_per_million=10, output_per_million=30)))
    registry.register_model(FakeModel("cheap", pricing=ModelPricing(input_per_million=0.1, output_per_million=0.4)))
    register_groups(registry, [GroupEntry.model_validate({
        "name": "chat", "strategy": "priority", "budget_aware": {"budget": "monthly", "threshold": 0.8},
        "deployments": [{"model": "dear"}, {"model": "cheap", "priority": 1}]})])
    group = registry.require_model("chat")
    assert group.generate("hi").model == "dear"
    shares["monthly"] = 0.85
    assert group.generate("hi").model == "cheap"
    shares.pop("monthly")  # no such budget (deleted): the strategy again
    assert group.generate("hi").model == "dear"


@pytest.mark.parametrize(("fault", "error_type"), [
    (WireReply(status=429), "rate_limited"),
    (WireReply(status=503), "provider_unavailable"),
    (WireReply(delay=1.0), "provider_timeout"),
    (WireReply(fault="reset"), "provider_unavailable"),
])
def test_each_upstream_fault_fails_over_to_the_next_deployment(registry, fault, error_type):
    with OpenAIWireServer() as failing, OpenAIWireServer() as healthy:
        failing.always(fault)
        models = [OpenAICompatibleModel(name, base_url=server.base_url, model="m", max_attempts=1, timeout=0.3)
                  for name, server in (("failing", failing), ("healthy", healthy))]
        group = group_of(registry, *models)
        result = group.generate("hi", max_tokens=3, request_id="client-fault")
    assert (result.model, result.attempts, result.response) == ("healthy", 2, "openai says: hi")
    first, second = rows_of(registry, "client-fault")
    assert (first["model"], first["status"], first["error_type"]) == ("failing", "error", error_type)
    assert (second["model"], second["status"]) == ("healthy", "success")


def test_the_models_list_describes_a_group(app, client, svc):
    group_of(svc.registry, FakeModel("first"), FakeModel("second"))
    described = {m["name"]: m for m in client.get("/api/models").json["details"]}["chat"]
    assert (described["provider"], described["strategy"], described["fallbacks"]) == ("group", "priority", [])
    assert [d["model"] for d in described["deployments"]] == ["first", "second"]
    listed = {m["id"]: m for m in client.get("/v1/models").json["data"]}
    assert listed["chat"]["owned_by"] == "group"
