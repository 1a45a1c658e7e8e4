"""The request-log and models pages: the log lists, filters and pages calls and shows one in full; the models page
shows each model with its health and breaker, and each group with its deployments and routing split."""

from __future__ import annotations

import re

import pytest

from models.errors import InvalidRequestError, ProviderUnavailableError
from models.routing.group_config import DeploymentEntry, GroupEntry, register_groups
from tests.fakes import FakeModel


def _request_ids(page: str) -> list[str]:
    return re.findall(r'href="/dashboard/requests/([\w-]+)"', page)


@pytest.fixture
def calls(client, svc, fake_model) -> list[str]:
    """Three successes and one failure of the fake model, as request ids, newest first."""
    fake_model.enqueue("one", "two", "three", InvalidRequestError("bad request"))
    ids = [client.post("/api/generate", json={"prompt": f"call {n}", "user_id": "ann", "tags": ["t1"]}).json
           for n in range(3)]
    failed = client.post("/api/generate", json={"prompt": "fail", "user_id": "bob"})
    assert failed.status_code == 400
    return [svc.request_log.list(1)[0]["request_id"], *reversed([body["request_id"] for body in ids])]


def test_the_log_lists_the_calls_newest_first(client, calls):
    page = client.get("/dashboard/requests")
    assert page.status_code == 200 and 'aria-current="page">Request log' in page.text
    assert _request_ids(page.text) == calls


@pytest.mark.parametrize(("query", "expected"), [
    ("status=error", [0]), ("status=success", [1, 2, 3]), ("user_id=bob", [0]), ("tag=t1", [1, 2, 3]),
    ("model=fake-model&status=success&since=2000-01-01T00:00Z", [1, 2, 3]), ("model=other", []),
    ("until=2000-01-01T00:00", []),
])
def test_a_filter_narrows_the_table(client, calls, query, expected):
    page = client.get(f"/dashboard/requests?{query}")
    assert _request_ids(page.text) == [calls[i] for i in expected]


def test_a_bad_filter_is_explained_not_run(client, calls):
    page = client.get("/dashboard/requests?status=bogus&since=yesterday")
    assert page.status_code == 400 and "status" in page.text and "since" in page.text
    assert _request_ids(page.text) == []


def test_the_older_link_carries_the_cursor_and_the_filters(client, calls):
    first = client.get("/dashboard/requests?limit=2&status=success")
    assert _request_ids(first.text) == calls[1:3]
    older = re.search(r'href="([^"]+)" id="older"', first.text)
    assert older is not None and "status=success" in older.group(1) and "before=" in older.group(1)
    second = client.get(older.group(1).replace("&amp;", "&"))
    assert _request_ids(second.text) == calls[3:] and 'id="older"' not in second.text and "Newest" in second.text


def test_the_detail_shows_the_conversation_and_the_usage(client, calls, svc):
    row = svc.request_log.get(calls[1])
    page = client.get(f"/dashboard/requests/{calls[1]}")
    assert page.status_code == 200
    assert "call 2" in page.text and '<pre id="response">three</pre>' in page.text
    usage = re.search(r'id="usage">(.*?)</table>', page.text, re.S)
    assert usage is not None
    cards = re.findall(r'class="value">([^<]+)<', usage.group(1))
    figures = ("input_tokens", "cached_tokens", "cache_write_tokens", "thinking_tokens", "output_tokens",
               "total_tokens")
    assert cards[:6] == [str(row[name]) for name in figures] and row["input_tokens"] == 2
    assert f"{row['cost']:.6f}" in page.text
    failed = client.get(f"/dashboard/requests/{calls[0]}").text
    assert 'id="error"' in failed and "bad request" in failed


def test_an_unknown_request_id_is_a_404_page(client):
    page = client.get("/dashboard/requests/no-such-id")
    assert page.status_code == 404 and "No call has the request id no-such-id" in page.text


def test_user_data_is_escaped(client, fake_model):
    fake_model.enqueue("<script>alert(1)</script>")
    request_id = client.post("/api/generate", json={"prompt": "<b>hi</b>"}).json["request_id"]
    page = client.get(f"/dashboard/requests/{request_id}").text
    assert "<script>alert" not in page and "&lt;script&gt;" in page and "&lt;b&gt;hi" in page


def test_the_models_page_shows_models_groups_their_split_and_breakers(client, svc):
    first, second = FakeModel("first"), FakeModel("second")
    for model in (first, second):
        svc.registry.register_model(model)
    register_groups(svc.registry, [GroupEntry(name="chat", strategy="priority", deployments=[
        DeploymentEntry(model="first", priority=0), DeploymentEntry(model="second", priority=1)])])
    first.enqueue(*[ProviderUnavailableError("503")] * 5)  # five failovers open first's breaker
    for _ in range(6):
        assert client.post("/api/generate", json={"model": "chat", "prompt": "hi"}).json["model"] == "second"
    page = client.get("/dashboard/models").text
    models = re.search(r'id="models">(.*?)</table>', page, re.S)
    assert models is not None and "fake-model" in models.group(1) and "aka fake" in models.group(1)
    assert "$1" in models.group(1) and "<td>chat" not in models.group(1)
    group = re.search(r'id="group-chat">(.*?)</table>', page, re.S)
    assert group is not None and "priority" in group.group(1)
    rows = re.findall(r"<tr>\s*<td>(\w+).*?breaker (\w+).*?</tr>", group.group(1), re.S)
    assert rows == [("first", "open"), ("second", "closed")]
    assert "0.0%" in group.group(1) and "100.0%" in group.group(1)
