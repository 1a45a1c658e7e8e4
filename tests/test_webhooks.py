"""Budget webhooks cannot be aimed at internal addresses (SSRF): refused when a budget is saved if that can be
decided then, else at send time, where the alert is marked failed with the reason and nothing is sent."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from models.call_path import CallPath
from models.model_registry import ModelRegistry
from models.request_log import RequestLogRepository
from monitoring.budget_guard import BudgetGuard
from monitoring.budgets import BudgetService, BudgetSpec, InvalidBudgetError
from monitoring.webhook_policy import WebhookPolicy, WebhookRefusedError
from monitoring.webhooks import WebhookNotifier
from tests.fakes import FakeModel

PUBLIC = "93.184.216.34"


@pytest.fixture
def receiver() -> Iterator[dict[str, Any]]:
    """A local endpoint recording each POST (path, Host header, body); `status` and `location` set its answer."""
    state: dict[str, Any] = {"posts": [], "status": 204, "location": None}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            state["posts"].append((self.path, self.headers["Host"], body))
            self.send_response(state["status"])
            if state["location"]:
                self.send_header("Location", state["location"])
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    state["port"] = server.server_address[1]
    yield state
    server.shutdown()
    server.server_close()


def _notifier(policy: WebhookPolicy) -> tuple[WebhookNotifier, list[tuple]]:
    results: list[tuple] = []
    notifier = WebhookNotifier(policy, backoff=0.01, on_result=lambda *result: results.append(result))
    return notifier, results


@pytest.mark.parametrize(("url", "reason"), [
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254, a link-local address"),
    ("http://127.0.0.1:8080/hook", "127.0.0.1, a loopback address"),
    ("http://localhost:8080/hook", "a loopback address"),
    ("https://10.1.2.3/hook", "10.1.2.3, a private address"),
    ("http://[::1]/hook", "::1, a loopback address"),
    ("http://[::ffff:169.254.169.254]/hook", "a link-local address"),
    ("http://100.64.0.1/hook", "not a public unicast address"),
    ("http://0.0.0.0:9/hook", "a private address"),
    ("ftp://example.com:21/hook", "not an http:// or https:// URL"),
])
def test_internal_addresses_are_refused_and_say_why(url, reason):
    with pytest.raises(WebhookRefusedError, match=reason):
        WebhookPolicy().destination(url)
    if not url.startswith("ftp"):
        assert WebhookPolicy(allow_private=True).destination(url).url.startswith(url.split(":")[0])


def test_every_address_of_a_host_is_checked_and_the_delivery_pinned_to_a_checked_one():
    policy = WebhookPolicy(resolver=lambda host, port: [PUBLIC, "10.0.0.7"])
    with pytest.raises(WebhookRefusedError, match="hooks.example resolves to 10.0.0.7, a private address"):
        policy.destination("https://hooks.example/alert")
    pinned = WebhookPolicy(resolver=lambda host, port: [PUBLIC]).destination("https://user:pw@hooks.example/a?b=1")
    assert (pinned.url, pinned.host, pinned.host_header) == (
        f"https://user:pw@{PUBLIC}:443/a?b=1", "hooks.example", "hooks.example")


def test_a_delivery_connects_to_the_address_checked_not_to_a_second_dns_answer(receiver):
    lookups: list[str] = []

    def resolver(host: str, port: int) -> list[str]:  # the system resolver does not know hooks.example at all
        lookups.append(host)
        return ["127.0.0.1"]

    notifier, results = _notifier(WebhookPolicy(allow_private=True, resolver=resolver))
    notifier.send(f"http://hooks.example:{receiver['port']}/hook?team=a", {"event": "x"}, alert_id=7)
    assert notifier.wait_idle()
    assert results == [(7, "delivered", 1, None)] and lookups == ["hooks.example"]
    assert receiver["posts"] == [("/hook?team=a", f"hooks.example:{receiver['port']}", b'{"event": "x"}')]


def test_a_refused_url_is_never_sent_to_and_the_alert_fails_with_the_reason(receiver):
    notifier, results = _notifier(WebhookPolicy())
    notifier.send(f"http://127.0.0.1:{receiver['port']}/hook", {"event": "x"}, alert_id=3)
    assert notifier.wait_idle()
    [(alert_id, status, attempts, error)] = results
    assert (alert_id, status, attempts) == (3, "failed", 0) and "127.0.0.1, a loopback address" in error
    assert receiver["posts"] == []


def test_redirects_are_not_followed(receiver):
    receiver.update(status=302, location="http://169.254.169.254/latest/meta-data/")
    notifier, results = _notifier(WebhookPolicy(allow_private=True))
    notifier.attempts = 1
    notifier.send(f"http://127.0.0.1:{receiver['port']}/hook", {"event": "x"}, alert_id=1)
    assert notifier.wait_idle()
    assert results == [(1, "failed", 1, "answered HTTP 302")] and len(receiver["posts"]) == 1


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data/", "http://localhost:6379/"])
def test_the_api_refuses_an_internal_webhook_url_naming_the_field(client, url):
    body = {"name": "cap", "scope": "global", "period": "daily", "limit_usd": 1, "webhook_url": url}
    refused = client.post("/api/budgets", json=body)
    assert refused.status_code == 400
    [field] = refused.get_json()["error"]["details"]["fields"]
    assert field["field"] == "webhook_url" and "WEBHOOK_ALLOW_PRIVATE" in field["reason"]
    created = client.post("/api/budgets", json={**body, "webhook_url": f"https://{PUBLIC}/hook"})
    assert created.status_code == 201
    patched = client.patch(f"/api/budgets/{created.get_json()['id']}", json={"webhook_url": url})
    assert patched.status_code == 400 and patched.get_json()["error"]["details"]["fields"][0]["field"] == "webhook_url"


def test_a_host_that_resolves_only_later_is_refused_when_the_alert_is_sent(engine, settings, receiver):
    answers: dict[str, list[str]] = {}

    def resolver(host: str, port: int) -> list[str]:
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    policy = WebhookPolicy(resolver=resolver)
    budgets = BudgetService(engine, webhook_policy=policy)
    notifier = WebhookNotifier(policy, backoff=0.01, on_result=budgets.store.set_webhook_status)
    registry = ModelRegistry(engine, settings=settings, register_defaults=False,
                             call_path=CallPath(RequestLogRepository(engine), [BudgetGuard(budgets, notifier)]))
    model = FakeModel()
    registry.register_model(model)
    url = f"http://hooks.example:{receiver['port']}/hook"
    budgets.create(BudgetSpec(name="b", scope="global", period="daily", limit_usd=1e-6, alert_thresholds=[0.1],
                              webhook_url=url))  # cannot be decided yet: accepted
    with pytest.raises(InvalidBudgetError):
        budgets.create(BudgetSpec(name="c", scope="global", period="daily", limit_usd=1, webhook_url="http://[::1]/"))

    answers["hooks.example"] = ["127.0.0.1"]  # by the time the alert fires, the name points inside
    model.generate("hello world", max_tokens=5)
    assert notifier.wait_idle()
    [alert] = budgets.alerts()
    assert (alert["webhook_status"], alert["webhook_attempts"]) == ("failed", 0)
    assert alert["webhook_error"].startswith("refused: hooks.example resolves to 127.0.0.1, a loopback address")
    assert receiver["posts"] == []
