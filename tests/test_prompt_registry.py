"""The prompt registry: immutable numbered versions, atomic labels, and calls that name a prompt instead of text
(`/api/generate`, `/v1/chat/completions`, workflow steps, experiment variants), recorded per version."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from models.prompts.spec import PromptRef, PromptSpec
from storage.database import read

GREETING = {"name": "greeting", "template": "Say hello to {{ who }} in {lang}.", "variables": ["who", "lang"]}


def push(client, body: dict) -> int:
    response = client.post("/api/prompts", json=body)
    assert response.status_code == 201, response.json
    return response.json["version"]


def label(client, name: str, label_name: str, version: int) -> None:
    response = client.put(f"/api/prompts/{name}/labels/{label_name}", json={"version": version})
    assert response.status_code == 200, response.json


def generate(client, **ref) -> dict:
    response = client.post("/api/generate", json={"model": "fake-model", "prompt_ref": {"name": "greeting", **ref}})
    assert response.status_code == 200, response.json
    return response.json


def test_versions_are_numbered_and_never_change(client):
    assert push(client, GREETING) == 1
    assert push(client, {**GREETING, "template": "Hi {{ who }} ({{ lang }})"}) == 2
    assert push(client, {"name": "other", "messages": [{"role": "system", "content": "Be brief."},
                                                       {"role": "user", "content": "Hi"}]}) == 1
    prompt = client.get("/api/prompts/greeting").json
    assert [v["version"] for v in prompt["versions"]] == [1, 2] and prompt["labels"] == {}
    assert prompt["versions"][0]["template"] == GREETING["template"]  # v2 did not touch v1
    assert client.get("/api/prompts/nothing").status_code == 404


@pytest.mark.parametrize(("body", "reason"), [
    ({**GREETING, "variables": ["who"]}, "undeclared variables: lang"),
    ({"name": "x", "template": "{{ ''.__class__ }}"}, "refused"),
    ({"name": "x", "template": "a", "messages": [{"role": "user", "content": "b"}]}, "exactly one"),
])
def test_invalid_versions_are_refused(client, body, reason):
    response = client.post("/api/prompts", json=body)
    assert response.status_code == 400 and reason in response.json["error"]["message"]


def test_moving_the_production_label_changes_what_generate_sends(client, fake_model, svc):
    push(client, GREETING)
    push(client, {**GREETING, "template": "Greet {{ who }} warmly, in {{ lang }}."})
    label(client, "greeting", "production", 1)
    first = generate(client, variables={"who": "Ana", "lang": "French"})  # no label or version: production
    assert fake_model.calls[-1].prompt == "Say hello to Ana in French."
    label(client, "greeting", "production", 2)
    second = generate(client, label="production", variables={"who": "Ana", "lang": "French"})
    assert fake_model.calls[-1].prompt == "Greet Ana warmly, in French."
    rows = [svc.request_log.get(result["request_id"]) for result in (first, second)]
    assert [(row["prompt_name"], row["prompt_version"]) for row in rows] == [("greeting", 1), ("greeting", 2)]
    assert client.get("/api/prompts/greeting").json["labels"] == {"production": 2}


def test_missing_and_extra_variables_are_400s_naming_them(client, fake_model):
    push(client, GREETING)
    response = client.post("/api/generate", json={"prompt_ref": {"name": "greeting", "version": 1,
                                                                 "variables": {"who": "Ana", "tone": "dry"}}})
    assert response.status_code == 400
    fields = {f["field"]: f["reason"] for f in response.json["error"]["details"]["fields"]}
    assert fields == {"prompt_ref.variables.lang": "missing variable",
                      "prompt_ref.variables.tone": "not a variable of this prompt version"}
    assert fake_model.calls == []


@pytest.mark.parametrize(("ref", "status"), [
    ({"name": "nothing"}, 404), ({"name": "greeting", "version": 9}, 404), ({"name": "greeting", "label": "qa"}, 404),
    ({"name": "greeting", "version": 1, "label": "production"}, 400),
])
def test_unknown_prompts_labels_and_versions(client, ref, status):
    push(client, GREETING)
    response = client.post("/api/generate", json={"prompt_ref": {**ref, "variables": {"who": "a", "lang": "b"}}})
    assert response.status_code == status, response.json
    assert client.put("/api/prompts/greeting/labels/production", json={"version": 5}).status_code == 404


def test_generate_takes_one_of_prompt_messages_or_prompt_ref(client):
    push(client, GREETING)
    response = client.post("/api/generate", json={"prompt": "x", "prompt_ref": {"name": "greeting"}})
    assert response.status_code == 400 and "prompt_ref" in response.json["error"]["message"]


def test_chat_completions_with_prompt_ref(client, fake_model, svc):
    push(client, {"name": "support", "variables": ["product"], "messages": [
        {"role": "system", "content": "You support {{ product }}."}, {"role": "user", "content": "Hello"}]})
    response = client.post("/v1/chat/completions", json={
        "model": "fake-model", "prompt_ref": {"name": "support", "version": 1, "variables": {"product": "Acme"}}})
    assert response.status_code == 200, response.json
    sent = fake_model.calls[-1]
    assert sent.system == "You support Acme." and sent.prompt == "Hello"
    row = svc.request_log.get(response.json["id"].removeprefix("chatcmpl-"))
    assert (row["prompt_name"], row["prompt_version"]) == ("support", 1)
    both = client.post("/v1/chat/completions", json={"model": "fake-model", "messages": [
        {"role": "user", "content": "x"}], "prompt_ref": {"name": "support", "version": 1}})
    assert both.status_code == 400


def test_a_workflow_step_can_name_a_prompt(client, fake_model, svc):
    push(client, GREETING)
    label(client, "greeting", "production", 1)
    definition = {"name": "wf", "model": "fake-model", "steps": [
        {"name": "greet", "prompt_ref": {"name": "greeting", "variables": {"who": "{{ input }}", "lang": "{tongue}"}}},
        {"name": "shout", "prompt": "Shout: {input}"},
    ]}
    result = svc.workflows.run(definition, "Ana", variables={"tongue": "Dutch"})
    assert [call.prompt for call in fake_model.calls] == ["Say hello to Ana in Dutch.",
                                                          "Shout: echo: Say hello to Ana in Dutch."]
    row = svc.request_log.get(result["steps"][0]["request_id"])
    assert (row["source"], row["prompt_name"], row["prompt_version"]) == ("workflow", "greeting", 1)
    missing = client.post("/api/workflow", json={"steps": definition["steps"], "model": "fake-model", "input": "x"})
    assert missing.status_code == 400 and "tongue" in missing.json["error"]["message"]
    assert len(fake_model.calls) == 2  # refused before any call


def test_label_moves_are_atomic_under_concurrent_readers(svc):
    registry = svc.prompts
    for template in ("one", "two"):
        registry.push(PromptSpec(name="flip", template=template))
    registry.set_label("flip", "production", 1)
    seen: set[int] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            seen.add(registry.render(PromptRef(name="flip")).version)  # never a missing label in between

    thread = threading.Thread(target=reader)
    thread.start()
    for version in (2, 1) * 10:
        registry.set_label("flip", "production", version)
    stop.set()
    thread.join()
    assert seen <= {1, 2}
    with read(svc.engine) as conn:
        assert conn.execute(text("SELECT count(*) FROM prompt_labels")).scalar() == 1  # moved, never duplicated


def test_cli_push_and_label(runner, tmp_path, svc):
    path = tmp_path / "prompts.yaml"
    path.write_text("- name: greeting\n  template: 'Hi {{ who }}'\n  variables: [who]\n"
                    "- name: farewell\n  messages:\n    - {role: user, content: Bye}\n")
    first = runner.invoke(args=["prompts", "push", str(path)])
    assert first.exit_code == 0, first.output
    assert "greeting: created version 1" in first.output and "farewell: created version 1" in first.output
    again = runner.invoke(args=["prompts", "push", str(path)])
    assert "greeting: unchanged at version 1" in again.output  # unchanged content adds no version
    path.write_text("name: greeting\ntemplate: 'Hello {{ who }}'\nvariables: [who]\n")
    assert "greeting: created version 2" in runner.invoke(args=["prompts", "push", str(path)]).output
    moved = runner.invoke(args=["prompts", "label", "greeting", "2", "staging"])
    assert moved.exit_code == 0 and svc.prompts.describe("greeting")["labels"] == {"staging": 2}
    assert runner.invoke(args=["prompts", "label", "greeting", "7", "staging"]).exit_code != 0
    path.write_text("name: bad\ntemplate: '{{ x }}'\n")
    refused = runner.invoke(args=["prompts", "push", str(path)])
    assert refused.exit_code != 0 and "undeclared variables: x" in refused.output


def test_metrics_per_version_read_the_prompt_index(client, fake_model, svc):
    push(client, GREETING)
    push(client, {**GREETING, "template": "Yo {{ who }} {{ lang }}"})
    variables = {"who": "a", "lang": "b"}
    for version in (1, 1, 2):
        generate(client, version=version, variables=variables)
    fake_model.enqueue(RuntimeError("down"))
    client.post("/api/generate", json={"model": "fake-model", "prompt_ref": {"name": "greeting", "version": 2,
                                                                             "variables": variables}})
    metrics = client.get("/api/prompts/greeting/metrics").json["versions"]
    assert [(m["version"], m["requests"], m["errors"]) for m in metrics] == [(1, 2, 0), (2, 2, 1)]
    assert metrics[1]["error_rate"] == 0.5 and metrics[0]["total_tokens"] > 0 and metrics[0]["total_cost"] > 0
    with read(svc.engine) as conn:
        plan = " ".join(str(row[-1]) for row in conn.execute(text(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM request_log WHERE prompt_name = 'greeting' "
            "AND created_at >= '2026-01-01' GROUP BY prompt_version")))
    assert "ix_request_log_prompt_created_at" in plan
    assert client.get("/api/prompts/nothing/metrics").status_code == 404


def test_experiment_variants_can_be_prompt_versions(client, fake_model, svc):
    push(client, GREETING)
    push(client, {**GREETING, "template": "Greet {{ who }} warmly, in {{ lang }}."})
    created = client.post("/api/experiment", json={"name": "greetings", "start": True, "variants": [
        {"name": "v1", "model": "fake-model", "prompt_ref": {"name": "greeting", "version": 1}},
        {"name": "v2", "model": "fake-model", "prompt_ref": {"name": "greeting", "version": 2}}]})
    assert created.status_code == 201, created.json
    experiment_id = created.json["experiment_id"]
    served: dict[str, int] = {}
    for user in [f"user-{n}" for n in range(16)]:
        response = client.post("/v1/chat/completions", json={
            "model": "experiment:greetings", "user": user,
            "prompt_ref": {"name": "greeting", "variables": {"who": user, "lang": "Greek"}}})
        assert response.status_code == 200, response.json
        row = svc.request_log.get(response.json["id"].removeprefix("chatcmpl-"))
        expected = {1: f"Say hello to {user} in Greek.", 2: f"Greet {user} warmly, in Greek."}
        assert fake_model.calls[-1].prompt == expected[row["prompt_version"]]
        served[response.json["id"]] = row["prompt_version"]
        feedback = client.post("/api/feedback", json={"request_id": response.json["id"],
                                                      "success": row["prompt_version"] == 2})
        assert feedback.status_code == 200 and feedback.json["variant"] == f"v{row['prompt_version']}"
    stats = {v["name"]: v for v in client.get(f"/api/experiment/{experiment_id}/stats").json["stats"]["variants"]}
    assert set(served.values()) == {1, 2}
    for version in (1, 2):
        summary = stats[f"v{version}"]
        assert summary["prompt_ref"] == {"name": "greeting", "version": version}
        assert summary["n"] == list(served.values()).count(version)
        assert summary["conversion"]["rate"] == (1.0 if version == 2 else 0.0)
    bad = client.post("/api/experiment", json={"name": "bad", "variants": [
        {"name": "a", "model": "fake-model", "prompt_ref": {"name": "greeting", "version": 1, "label": "x"}},
        {"name": "b", "model": "fake-model"}]})
    assert bad.status_code == 400


def test_concurrent_pushes_get_distinct_consecutive_versions(svc):
    versions: list[int] = []

    def push_one(n: int) -> None:
        versions.append(svc.prompts.push(PromptSpec(name="busy", template=f"text {n}"))[0])

    threads = [threading.Thread(target=push_one, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(versions) == list(range(1, 9))
