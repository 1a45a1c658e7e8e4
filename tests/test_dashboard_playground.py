"""The dashboard's playground (answers streamed per model, on the managed call path) and workflows pages (graphs
drawn as inline SVG, runs with their steps, Resume), on fake models."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from models.errors import ProviderUnavailableError
from tests.fakes import FakeModel

STREAM = "/dashboard/playground/stream"


def _token(client) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/dashboard/playground").text)
    assert match is not None
    return match.group(1)


def _post(client, token: str | None = None, **body: Any):
    headers = {"X-CSRF-Token": token} if token else {}
    return client.post(STREAM, json={"system": "be brief", "message": "hello there", **body}, headers=headers,
                       buffered=False)


def _events(response) -> list[tuple[str, dict[str, Any]]]:
    """The server-sent events of a streamed response, read body chunk by body chunk."""
    text = "".join(chunk.decode() for chunk in response.response)
    events = []
    for block in filter(None, text.split("\n\n")):
        name, data = block.split("\n")
        events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def test_the_page_offers_the_chat_models(client) -> None:
    page = client.get("/dashboard/playground")
    assert page.status_code == 200
    assert 'value="fake-model" checked' in page.text and "playground.js" in page.text
    with client.get("/dashboard/static/playground.js") as script:
        assert script.status_code == 200


def test_an_answer_streams_chunk_by_chunk_and_is_recorded(client, svc, fake_model) -> None:
    response = _post(client, _token(client), model="fake-model", max_tokens=50, temperature=0.5)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    events = _events(response)
    assert [payload["text"] for name, payload in events if name == "chunk"] == ["echo:", " hello", " there"]
    name, done = events[-1]
    assert name == "done" and done["model"] == "fake-model" and done["tokens"] is not None
    [call] = fake_model.calls
    assert [m.role for m in call.messages] == ["system", "user"] and call.params.max_tokens == 50
    [row] = svc.request_log.list(source="api")
    assert row["request_id"] == done["request_id"] and row["status"] == "success" and row["tags"] == ["playground"]


def test_models_side_by_side_each_stream_their_own_answer(client, svc) -> None:
    svc.registry.register_model(FakeModel("other-model").enqueue("a different answer"))
    assert 'value="other-model"' in client.get("/dashboard/playground").text
    token = _token(client)
    answers = {model: "".join(p["text"] for n, p in _events(_post(client, token, model=model)) if n == "chunk")
               for model in ("fake-model", "other-model")}
    assert answers == {"fake-model": "echo: hello there", "other-model": "a different answer"}
    assert {row["model"] for row in svc.request_log.list(source="api")} == {"fake-model", "other-model"}


def test_a_provider_failure_mid_stream_ends_with_an_error_event(client, svc) -> None:
    class CutOff(FakeModel):
        def execute(self, request, usage):
            yield "partial"
            raise ProviderUnavailableError("connection reset mid-stream")

    svc.registry.register_model(CutOff("cut-off"))
    events = _events(_post(client, _token(client), model="cut-off"))
    assert events[0] == ("chunk", {"text": "partial"})
    assert events[-1][0] == "error" and "connection reset" in events[-1][1]["message"]
    assert [row["status"] for row in svc.request_log.list(model="cut-off")] == ["error"]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"model": "no-such-model"}, 404, "no-such-model"),
    ({"model": "fake-model", "max_tokens": 0}, 400, "max_tokens"),
    ({"model": "fake-model", "message": ""}, 400, "message"),
])
def test_invalid_requests_are_clear_4xx_messages(client, svc, fake_model, body, status, words) -> None:
    response = _post(client, _token(client), **body)
    assert response.status_code == status, response.get_data(as_text=True)
    assert words in response.get_json()["error"]["message"]
    assert fake_model.calls == [] and svc.request_log.list() == []


def test_a_post_without_the_csrf_token_is_refused(client, fake_model) -> None:
    _token(client)  # the session exists; only the token is missing
    assert _post(client, model="fake-model").status_code == 400
    assert _post(client, "forged", model="fake-model").status_code == 400
    assert fake_model.calls == []


BRIEF = {"name": "brief", "steps": [
    {"name": "pros", "group": "views", "prompt": "pros of {input}"},
    {"name": "cons", "group": "views", "prompt": "cons of {input}"},
    {"name": "sum", "prompt": "{{ steps.pros.output }} / {{ steps.cons.output }}"},
    {"name": "polish", "prompt": "polish {input}; recall {{ steps.pros.output }}", "when": "input"},
]}


def test_the_workflows_page_draws_each_definition_as_an_svg_graph(client, svc) -> None:
    svc.workflows.save_workflow(BRIEF)
    page = client.get("/dashboard/workflows")
    assert page.status_code == 200
    svg = page.text[page.text.index("<svg"):page.text.index("</svg>")]
    boxes = re.findall(r'data-step="([^"]+)"', svg)
    assert sorted(boxes) == ["cons", "input", "output", "polish", "pros", "sum"]
    assert svg.count("stroke-dasharray=\"5 4\"") == 1  # polish reads pros, two layers back
    arrows = svg.count('marker-end="url(#graph-1-arrow)"')
    assert arrows == 2 + 2 + 1 + 1 + 1  # input→pros/cons, pros/cons→sum, sum→polish, polish→output, pros⇢polish


def test_a_failed_run_is_shown_and_resumed_from_its_page(client, svc, fake_model) -> None:
    fake_model.enqueue("draft text", ProviderUnavailableError("upstream 503"))
    response = client.post("/api/workflow", json={"input": "solar", "template": "content_generation", "model": "fake"})
    run_id = response.get_json()["error"]["details"]["run_id"]
    assert run_id in client.get("/dashboard/workflows").text

    page = client.get(f"/dashboard/workflows/runs/{run_id}").text
    assert 'id="run-status">failed' in page and "upstream 503" in page and "draft text" in page
    assert "Resume" in page and '<svg class="workflow-graph"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    resume = f"/dashboard/workflows/runs/{run_id}/resume"
    assert client.post(resume).status_code == 400  # without its CSRF token
    resumed = client.post(resume, data={"csrf_token": token.group(1)})
    assert resumed.status_code == 302
    assert svc.workflows.get_run(run_id)["status"] == "succeeded"
    page = client.get(resumed.headers["Location"]).text
    assert 'id="run-status">succeeded' in page and "Resume" not in page

    again = client.post(resume, data={"csrf_token": token.group(1)})
    assert again.status_code == 409 and "only failed or interrupted runs resume" in again.text
