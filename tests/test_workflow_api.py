"""The workflow HTTP API on FakeModel: templates end to end, saved definitions, runs, errors and resume."""

from __future__ import annotations

from typing import Any

from models.errors import ProviderUnavailableError


def _run(client, **body):
    return client.post("/api/workflow", json={"input": "solar power", **body})


def test_original_templates_run_end_to_end(client, fake_model) -> None:
    for template in ("content_generation", "translation", "analysis"):
        fake_model.calls.clear()
        response = _run(client, template=template, model="fake")
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert body["status"] == "success"
        workflow = body["workflow"]
        steps = workflow["steps"]
        assert len(steps) == 3 and len(fake_model.calls) == 3
        assert steps[0]["output"] in steps[1]["prompt"] and steps[1]["output"] in steps[2]["prompt"]
        assert "solar power" in steps[0]["prompt"]
        assert workflow["final_output"] == steps[2]["output"] and workflow["workflow_name"] == template
        assert workflow["total_tokens"] == sum(s["tokens"] for s in steps)
        for key in ("run_id", "status", "total_cost", "total_latency"):
            assert key in workflow
        for step in steps:
            assert {"name", "output", "tokens", "cost", "latency", "request_id"} <= set(step)


def test_templates_endpoint_lists_names_and_descriptions(client) -> None:
    templates = client.get("/api/workflow/templates").get_json()["templates"]
    assert templates["translation"] == "Translate, review, and polish text"
    assert {"perspectives", "ticket_triage"} <= set(templates)


def test_ad_hoc_steps_with_variables_and_attribution(client, svc, fake_model) -> None:
    steps = [{"name": "a", "prompt_template": "Write {{ count }} words on {input}"}]
    body = _run(client, steps=steps, variables={"count": 3}, user_id="u-1", tags=["demo"]).get_json()
    step = body["workflow"]["steps"][0]
    assert step["prompt"] == "Write 3 words on solar power"
    row = svc.request_log.get(step["request_id"])
    assert row["user_id"] == "u-1" and row["tags"] == ["demo", f"workflow_run:{body['workflow']['run_id']}"]


CLIENT_MISTAKES: list[tuple[dict[str, Any], str | None]] = [
    ({"template": "nope"}, None),
    ({}, "(body)"),
    ({"template": "analysis", "steps": [{"prompt": "x"}]}, "(body)"),
    ({"steps": [{"prompt": "x", "temperature": 5}]}, "steps.0.temperature"),
    ({"steps": [{"prompt": "{{ ''.__class__.__mro__ }}"}]}, "steps.0.prompt_template"),
    ({"steps": [{"prompt": "{missing}"}]}, "steps.0.prompt_template"),
]


def test_client_mistakes_are_json_4xx_before_any_model_call(client, fake_model) -> None:
    for body, field in CLIENT_MISTAKES:
        response = _run(client, **body)
        error = response.get_json()["error"]
        if field is None:  # 400, as the original answered an unknown template
            assert response.status_code == 400 and error["code"] == "unknown_template"
        else:
            assert response.status_code == 400 and error["code"] == "validation_error", body
            assert field in {f["field"] for f in error["details"]["fields"]}, body
    assert fake_model.calls == []


def test_failing_step_answers_502_naming_run_and_step_then_resumes(client, fake_model) -> None:
    fake_model.enqueue("draft text", ProviderUnavailableError("upstream 503"))
    response = _run(client, template="content_generation", model="fake")
    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "workflow_step_failed"
    details = error["details"]
    assert details["step"] == "improve" and "upstream 503" in details["reason"]
    assert details["cause"] == "provider_unavailable"

    run = client.get(f"/api/workflow/runs/{details['run_id']}").get_json()["run"]
    assert run["status"] == "failed" and run["steps"][0]["output"] == "draft text"
    listed = client.get("/api/workflow/runs?status=failed").get_json()["runs"]
    assert [r["run_id"] for r in listed] == [details["run_id"]]

    resumed = client.post(f"/api/workflow/runs/{details['run_id']}/resume")
    assert resumed.status_code == 200
    assert resumed.get_json()["workflow"]["status"] == "succeeded"
    assert len(fake_model.calls) == 4  # draft once, improve twice (failed + resumed), format once
    again = client.post(f"/api/workflow/runs/{details['run_id']}/resume")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "run_not_resumable"


def test_saved_workflows_versions_graph_and_runs(client, fake_model) -> None:
    definition = {"name": "brief", "steps": [
        {"name": "pros", "group": "views", "prompt": "pros of {input}"},
        {"name": "cons", "group": "views", "prompt": "cons of {input}"},
        {"name": "sum", "prompt": "{{ steps.pros.output }} / {{ steps.cons.output }}", "when": "input"},
    ]}
    assert client.post("/api/workflows", json=definition).status_code == 201
    saved = client.post("/api/workflows", json={**definition, "description": "v2"}).get_json()["workflow"]
    assert saved["version"] == 2
    assert [w["version"] for w in client.get("/api/workflows").get_json()["workflows"]] == [2]
    versions = client.get("/api/workflows/brief/versions").get_json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    assert client.get("/api/workflows/brief?version=1").get_json()["workflow"]["version"] == 1

    graph = client.get("/api/workflows/brief/graph").get_json()["graph"]
    assert graph.startswith("flowchart TD")
    assert 'subgraph group_views' in graph and "step_pros --> step_sum" in graph.replace('-->|"when input"|', "-->")

    result = _run(client, workflow="brief").get_json()["workflow"]
    assert result["workflow_version"] == 2 and result["status"] == "succeeded"


def test_unknown_names_are_404_json(client) -> None:
    for path in ("/api/workflows/none", "/api/workflows/none/versions", "/api/workflows/none/graph",
                 "/api/workflow/runs/none"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["error"]["code"] in ("workflow_not_found", "run_not_found")
    assert client.post("/api/workflow/runs/none/resume").get_json()["error"]["code"] == "run_not_found"


def test_invalid_saved_definition_names_the_field(client) -> None:
    response = client.post("/api/workflows", json={"name": "bad", "steps": [
        {"name": "a", "prompt": "{{ steps.b.output }}"}, {"name": "b", "prompt": "x"}]})
    assert response.status_code == 400
    assert response.get_json()["error"]["details"]["fields"][0]["field"] == "steps.0.prompt_template"
    response = client.post("/api/workflows", json={"name": "bad name!", "steps": [{"prompt": "x"}]})
    assert response.status_code == 400 and response.get_json()["error"]["details"]["fields"][0]["field"] == "name"


def test_an_async_run_answers_202_at_once_and_runs_as_a_job(client, svc, fake_model) -> None:
    import time

    response = _run(client, steps=[{"name": "draft", "prompt": "Write about {input}"}], model="fake",
                    user_id="ana", **{"async": True})
    assert response.status_code == 202, response.get_json()
    accepted = response.get_json()
    assert accepted["status"] == "accepted"
    deadline = time.monotonic() + 10
    while (job := client.get(f"/api/jobs/{accepted['job_id']}").get_json())["status"] != "succeeded":
        assert job["status"] in ("queued", "running") and time.monotonic() < deadline, job
        time.sleep(0.02)
    assert job["result"] == {"run_id": accepted["run_id"], "status": "succeeded"}
    run = client.get(f"/api/workflow/runs/{accepted['run_id']}").get_json()["run"]
    assert run["status"] == "succeeded" and len(fake_model.calls) == 1
    row = svc.request_log.get(run["steps"][0]["request_id"])
    assert (row["source"], row["user_id"]) == ("workflow", "ana") and "solar power" in row["prompt"]


def test_an_async_run_with_bad_input_is_refused_before_any_job(client, svc) -> None:
    response = _run(client, steps=[{"name": "draft", "prompt": "{missing}"}], model="fake", **{"async": True})
    assert response.status_code == 400
    assert svc.jobs.runner.store.has_pending("workflow_run") is False
