"""Model versions: automatic semver, stages, the serving version, rollback, per-version metrics and refusals."""

from __future__ import annotations

import threading

import pytest

from models.model_registry import ModelRegistry
from models.pricing import ModelPricing
from models.versions import Configuration, change_kind, next_version
from tests.fakes import FakeModel

BASE = Configuration(provider="fake", upstream="m", defaults={"temperature": 0.5}, system="Be brief.",
                     pricing={"input_per_million": 1.0, "output_per_million": 2.0},
                     metadata={"display_name": None})


@pytest.mark.parametrize(("changes", "kind", "version"), [
    ({"upstream": "m2"}, "major", "2.0.0"),
    ({"provider": "other"}, "major", "2.0.0"),
    ({"defaults": {"temperature": 0.2}}, "minor", "1.4.0"),
    ({"system": "Be thorough."}, "minor", "1.4.0"),
    ({"pricing": {"input_per_million": 3.0, "output_per_million": 2.0}}, "patch", "1.3.3"),
    ({"metadata": {"display_name": "M"}}, "patch", "1.3.3"),
    ({"upstream": "m2", "pricing": None}, "major", "2.0.0"),  # the most significant change decides
])
def test_semver_bumps_by_what_changed(changes, kind, version):
    changed = Configuration(**{**BASE.to_dict(), **changes})
    assert change_kind(BASE, changed) == kind
    assert next_version("1.3.2", kind) == version
    assert changed.hash != BASE.hash


def test_an_equal_configuration_hashes_equally_and_the_first_version_is_1_0_0():
    assert change_kind(BASE, Configuration.from_dict(BASE.to_dict())) is None
    assert Configuration.from_dict(BASE.to_dict()).hash == BASE.hash
    assert next_version(None, None) == "1.0.0"


def _generate(client, **body):
    return client.post("/api/generate", json={"prompt": "hi", "model": "fake-model", **body})


def _versions(client):
    return client.get("/api/models/fake-model/versions").get_json()


def test_registration_records_the_first_version_in_production(client, fake_model):
    listing = _versions(client)
    assert [(v["version"], v["stage"], v["created_by"]) for v in listing["versions"]] == [
        ("1.0.0", "production", "startup")]
    assert listing["serving"] == fake_model.version == "1.0.0"
    assert listing["versions"][0]["config_hash"] == Configuration.of(fake_model).hash


def test_patch_promote_and_rollback_change_what_the_model_receives(client, fake_model, svc):
    created = client.patch("/api/models/fake-model", json={"defaults": {"temperature": 0.3}})
    assert created.status_code == 201
    assert created.get_json()["version"]["version"] == "1.1.0"  # a parameter: minor
    assert created.get_json()["version"]["stage"] == "development"
    assert _generate(client).status_code == 200
    assert fake_model.calls[-1].params.temperature is None  # development does not serve

    promoted = client.post("/api/models/fake-model/versions/1.1.0/promote", json={"stage": "production"})
    assert promoted.status_code == 200 and promoted.get_json()["version"]["stage"] == "production"
    assert _generate(client).status_code == 200
    assert fake_model.calls[-1].params.temperature == 0.3
    stages = {v["version"]: v["stage"] for v in _versions(client)["versions"]}
    assert stages == {"1.0.0": "deprecated", "1.1.0": "production"}

    rolled = client.post("/api/models/fake-model/rollback")
    assert rolled.status_code == 201
    entry = rolled.get_json()["version"]
    first = _versions(client)["versions"][0]
    assert (entry["version"], entry["created_by"], entry["restores"]) == ("1.2.0", "rollback", "1.0.0")
    assert entry["config_hash"] == first["config_hash"] == Configuration.of(fake_model).hash
    assert _generate(client).status_code == 200
    assert fake_model.calls[-1].params.temperature is None

    logged = [row["model_version"] for row in reversed(svc.request_log.list(model="fake-model"))]
    assert logged == ["1.0.0", "1.1.0", "1.2.0"]
    metrics = client.get("/api/metrics/versions?model=fake").get_json()
    assert [(v["version"], v["requests"], v["error_rate"]) for v in metrics["versions"]] == [
        ("1.0.0", 1, 0.0), ("1.1.0", 1, 0.0), ("1.2.0", 1, 0.0)]
    assert metrics["versions"][0]["total_cost"] > 0 and metrics["versions"][0]["p50_latency"] is not None


def test_pricing_and_system_changes_bump_patch_and_minor(client, fake_model):
    priced = client.patch("/api/models/fake-model", json={"pricing": {"input_per_million": 9.0}})
    assert priced.get_json()["version"]["version"] == "1.0.1"
    assert priced.get_json()["version"]["configuration"]["pricing"]["output_per_million"] == 2.0  # merged
    system = client.patch("/api/models/fake-model", json={"system": "Answer in French."})
    assert system.get_json()["version"]["version"] == "1.1.0"
    client.post("/api/models/fake-model/versions/1.1.0/promote", json={"stage": "production"})
    _generate(client)
    assert fake_model.calls[-1].system == "Answer in French."
    assert fake_model.pricing == ModelPricing(input_per_million=1.0, output_per_million=2.0,
                                              cached_input_per_million=0.5)  # 1.0.1's prices never served


def test_an_archived_serving_version_refuses_calls_until_another_is_promoted(client, fake_model):
    client.patch("/api/models/fake-model", json={"defaults": {"temperature": 0.3}})
    archived = client.post("/api/models/fake-model/versions/1.0.0/promote", json={"stage": "archived"})
    assert archived.status_code == 200
    refused = _generate(client)
    assert refused.status_code == 409
    assert refused.get_json()["error"]["code"] == "version_archived"
    assert "1.0.0" in refused.get_json()["error"]["message"]
    calls = len(fake_model.calls)
    back = client.post("/api/models/fake-model/versions/1.0.0/promote", json={"stage": "production"})
    assert back.status_code == 409 and back.get_json()["error"]["code"] == "illegal_stage_move"
    client.post("/api/models/fake-model/versions/1.1.0/promote", json={"stage": "production"})
    assert _generate(client).status_code == 200
    assert len(fake_model.calls) == calls + 1 and fake_model.calls[-1].params.temperature == 0.3


@pytest.mark.parametrize(("method", "url", "body", "status", "code"), [
    ("patch", "/api/models/nope", {"defaults": {"temperature": 0.3}}, 404, "unknown_model"),
    ("get", "/api/models/nope/versions", None, 404, "unknown_model"),
    ("post", "/api/models/fake-model/versions/9.9.9/promote", {"stage": "staging"}, 404, "unknown_version"),
    ("post", "/api/models/fake-model/versions/1.0.0/promote", {"stage": "staging"}, 409, "illegal_stage_move"),
    ("post", "/api/models/fake-model/versions/1.0.0/promote", {"stage": "live"}, 400, "validation_error"),
    ("post", "/api/models/fake-model/rollback", None, 409, "nothing_to_roll_back"),
    ("patch", "/api/models/fake-model", {"defaults": {"temperature": 5}}, 400, "validation_error"),
    ("patch", "/api/models/fake-model", {"colour": "red"}, 400, "validation_error"),
    ("patch", "/api/models/fake-model", {}, 400, "validation_error"),
    ("get", "/api/metrics/versions?model=nope", None, 404, "unknown_model"),
])
def test_errors(client, method, url, body, status, code):
    response = getattr(client, method)(url, json=body) if body is not None else getattr(client, method)(url)
    assert response.status_code == status, response.get_json()
    assert response.get_json()["error"]["code"] == code


def test_a_promotion_reaches_another_worker_on_the_same_database(settings):
    workers = [ModelRegistry(settings.database_url, settings=settings, register_defaults=False) for _ in range(2)]
    models = [FakeModel(), FakeModel()]
    for registry, model in zip(workers, models, strict=True):
        registry.register_model(model)
    row = workers[0].versions.patch(models[0], {"defaults": {"temperature": 0.7}}, created_by="api")
    workers[0].versions.promote(models[0], row.version, "production")
    other = workers[1].require_model("fake-model")
    assert other.version == "1.1.0" and other.defaults is not None and other.defaults.temperature == 0.7


def test_concurrent_startups_record_a_configuration_once(settings):
    errors: list[BaseException] = []

    def start() -> None:
        try:
            ModelRegistry(settings.database_url, settings=settings, register_defaults=False).register_model(
                FakeModel())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    registry = ModelRegistry(settings.database_url, settings=settings, register_defaults=False)
    registry.register_model(FakeModel())  # a restart: still one version
    assert [row.version for row in registry.versions.history("fake-model")] == ["1.0.0"]


def test_a_restart_keeps_the_promoted_version_until_the_declaration_changes(settings):
    first = ModelRegistry(settings.database_url, settings=settings, register_defaults=False)
    model = FakeModel()
    first.register_model(model)
    first.versions.promote(model, first.versions.patch(model, {"system": "Hi."}, "cli").version, "production")

    restarted = FakeModel()
    ModelRegistry(settings.database_url, settings=settings, register_defaults=False).register_model(restarted)
    assert restarted.version == "1.1.0" and restarted.defaults is not None and restarted.defaults.system == "Hi."

    repriced = FakeModel(pricing=ModelPricing(input_per_million=5.0, output_per_million=5.0))
    registry = ModelRegistry(settings.database_url, settings=settings, register_defaults=False)
    registry.register_model(repriced)  # the declaration changed: it is recorded, and serves
    assert repriced.version == "1.2.0" and repriced.defaults is None  # minor: vs 1.1.0, the system prompt went
    assert [(row.version, row.stage) for row in registry.versions.history("fake-model")] == [
        ("1.0.0", "deprecated"), ("1.1.0", "deprecated"), ("1.2.0", "production")]


def test_cli_lists_promotes_and_rolls_back(runner, client):
    client.patch("/api/models/fake-model", json={"defaults": {"max_tokens": 5}})
    assert "1.1.0" in runner.invoke(args=["models", "promote", "fake-model", "1.1.0", "production"]).output
    listing = runner.invoke(args=["models", "versions", "fake-model"]).output
    assert "* 1.1.0" in listing and "1.0.0" in listing
    rolled = runner.invoke(args=["models", "rollback", "fake-model"])
    assert rolled.exit_code == 0 and "1.2.0" in rolled.output
    refused = runner.invoke(args=["models", "promote", "fake-model", "1.0.0", "staging"])
    assert refused.exit_code != 0 and "deprecated" in refused.output
