"""The dashboard in a real browser (headless Chromium through Playwright): every page loads with no console
errors and no failed requests, charts have data points, and a visitor without a session is refused once keys
exist. Screenshots go to test-artifacts/."""

from __future__ import annotations

import pytest
from flask import url_for

from api.app import create_app
from api.auth import create_key
from api.dashboard import NAV
from api.services import api_keys, services
from core.settings import Settings
from tests.browser import browser_page, screenshot, served
from tests.fakes import FakeModel


@pytest.fixture
def live_app(sqlite_url):
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": sqlite_url,
                                                                        "LOG_LEVEL": "WARNING"})
    app = create_app(settings)
    fake = FakeModel("fake-model")
    services(app).registry.register_model(fake)
    for index in range(6):
        fake.generate(f"question number {index}", source="api")
    return app


def test_every_page_loads_cleanly_and_charts_have_points(live_app):
    with served(live_app) as base, browser_page() as (page, watch):
        for endpoint, label in NAV:
            with live_app.test_request_context():
                path = url_for(endpoint)
            page.goto(base + path, wait_until="networkidle")
            screenshot(page, f"page-{label.lower().replace(' ', '-')}")
            assert page.locator("h1").count() >= 1, label
        page.goto(base + "/dashboard/", wait_until="networkidle")
        points = [int(p) for p in page.locator("div.chart").evaluate_all("(els) => els.map(e => e.dataset.points)")]
        assert points and all(count >= 1 for count in points)
        assert page.locator("#total-requests").inner_text() == "6"
    assert watch.problems == []


def test_with_keys_a_visitor_without_a_session_sees_only_the_sign_in_form(sqlite_url):
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": sqlite_url,
                                                                        "LOG_LEVEL": "WARNING"})
    app = create_app(settings)
    _, admin = create_key(api_keys(app), "ops", admin=True)
    with served(app) as base, browser_page() as (page, watch):
        page.goto(base + "/dashboard/", wait_until="networkidle")
        assert "/dashboard/sign-in" in page.url and page.locator("#total-requests").count() == 0
        page.fill("input[name=key]", admin)
        page.click("button[type=submit]")
        page.wait_for_url("**/dashboard/")
        assert page.locator("#total-requests").count() == 1
        assert admin not in page.url
        screenshot(page, "signed-in")
    assert watch.problems == []


def test_a_filter_narrows_the_request_log(live_app):
    services(live_app).registry.register_model(FakeModel("other-model"))
    services(live_app).registry.require_model("other-model").generate("only one", source="api")
    with served(live_app) as base, browser_page() as (page, watch):
        page.goto(base + "/dashboard/requests", wait_until="networkidle")
        everything = page.locator("#requests tr").count()
        page.fill("input[name=model]", "other-model")
        page.locator("form.filters").evaluate("(form) => form.submit()")
        page.wait_for_url("**model=other-model**")
        narrowed = page.locator("#requests tr").count()
        screenshot(page, "request-log-filtered")
    assert everything == 1 + 7 and narrowed == 1 + 1  # a header row, then one row per call
    assert watch.problems == []


@pytest.mark.local_model
def test_the_playground_streams_an_answer_from_the_local_model(live_app):
    local = services(live_app).registry.resolve("local")
    with served(live_app) as base, browser_page() as (page, watch):
        page.goto(base + "/dashboard/playground", wait_until="networkidle")
        for box in page.locator("input[name=model]").all():
            box.set_checked(box.get_attribute("value") == local)
        page.fill("textarea[name=message]", "Say hello.")
        page.fill("input[name=max_tokens]", "8")
        page.click("button[type=submit]")
        answer = page.locator("#playground-columns .column-answer").first
        page.wait_for_function("() => document.querySelector('#playground-columns .column-status')"
                               "?.textContent.includes('tokens')", timeout=60_000)
        screenshot(page, "playground")
        text = answer.inner_text()
    assert text.strip()
    rows = [r for r in services(live_app).request_log.list(20) if r["model"] == local]
    assert len(rows) == 1 and rows[0]["status"] == "success" and rows[0]["response"] == text
    assert watch.problems == []


def test_a_budget_created_in_the_form_appears_in_the_api(live_app):
    create = "form[action$='/dashboard/budgets']"
    with served(live_app) as base, browser_page() as (page, watch):
        page.goto(base + "/dashboard/budgets", wait_until="networkidle")
        page.fill(f"{create} input[name=name]", "team-monthly")
        page.fill(f"{create} input[name=limit_usd]", "12.5")
        page.click(f"{create} button[type=submit]")
        page.wait_for_load_state("networkidle")
        screenshot(page, "budget-created")
    budgets = live_app.test_client().get("/api/budgets").json["budgets"]
    assert [(b["name"], b["limit_usd"]) for b in budgets] == [("team-monthly", 12.5)]
    assert watch.problems == []
