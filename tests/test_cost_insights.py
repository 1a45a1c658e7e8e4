"""Cost insights on seeded figures: the forecast, each budget's run-out date and the recommendations equal sums
worked out by hand here; the JSON endpoints answer the same; the dashboard's budget forms go through the API's
rules, redirect after success, show refusals in the page and need their CSRF token."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

import pytest

from comparison.repository import PairRow
from models.pricing import ModelPricing
from models.request_log import RequestRecord
from monitoring.budgets import BudgetSpec
from monitoring.cost_recommendations import recommendations, repeated_prompts
from monitoring.spend_forecast import spend_forecast
from tests.fakes import FakeModel

NOW = datetime(2026, 3, 20, 12, 30)  # a Friday; the week began on Monday the 16th
DAILY_REPORT_DAYS = [datetime(2026, 3, day, 9) for day in range(13, 20)]  # the 7 full days before today
CHEAP = ModelPricing(input_per_million=0.1, output_per_million=0.2, cached_input_per_million=0.05)


def _log(svc, when: datetime, cost: float, prompt: str, *, tokens: tuple[int, int, int] = (1000, 500, 0),
         **fields) -> None:
    """One request-log row (its rollups follow in the same transaction)."""
    input_tokens, output_tokens, cached = tokens
    svc.request_log.insert(RequestRecord(
        request_id=str(uuid.uuid4()), model="fake-model", provider="fake", created_at=when,
        prompt=prompt, cost=cost, input_tokens=input_tokens, output_tokens=output_tokens, cached_tokens=cached,
        total_tokens=input_tokens + output_tokens, **{"source": "api", "status": "success", **fields}))


def _meet(svc, model_a: str, model_b: str, *scores: float) -> None:
    """Comparisons in which model_a scored `scores` against model_b (1 win, 0.5 draw, 0 loss)."""
    for score in scores:
        svc.comparison_store.comparisons.insert(
            prompt="q", models=[model_a, model_b], winner=None, tie=False, wall_time=None, total_cost=None,
            result={}, entries=[], pairs=[PairRow(model_a, model_b, score)])


@pytest.fixture
def seeded(svc):
    """Spend, budgets, comparisons and prices, all as of NOW."""
    svc.budgets.clock = lambda: NOW
    _log(svc, datetime(2026, 2, 10, 8), 2.0, "hello")  # outside the 30-day window: only the total budget
    _log(svc, datetime(2026, 2, 28, 8), 3.0, "unique", tokens=(1000, 500, 200))
    _log(svc, datetime(2026, 3, 2, 8), 1.0, "hello")
    for day in DAILY_REPORT_DAYS:
        _log(svc, day, 0.7, "daily report")
    _log(svc, datetime(2026, 3, 15, 10), 1.4, "ana's question", user_id="ana")
    _log(svc, datetime(2026, 3, 20, 10), 0.5, "hello")
    # repeats the cache estimate leaves out: a comparison's call, a cache hit, a failed call
    _log(svc, datetime(2026, 3, 20, 11), 0.0, "hello", tokens=(0, 0, 0), source="comparison")
    _log(svc, datetime(2026, 3, 20, 11), 0.0, "hello", tokens=(0, 0, 0), cache="exact")
    _log(svc, datetime(2026, 3, 20, 11), 0.0, "hello", tokens=(0, 0, 0), status="error")

    for name, pricing in (("cheap-model", CHEAP),
                          ("cheaper-but-worse", ModelPricing(input_per_million=0.05, output_per_million=0.1)),
                          ("barely-compared", ModelPricing(input_per_million=0.01, output_per_million=0.01)),
                          ("dearer-model", ModelPricing(input_per_million=1000, output_per_million=2000))):
        svc.registry.register_model(FakeModel(name, pricing=pricing))
    _meet(svc, "cheap-model", "fake-model", 1, 1, 1, 0, 0, 0.5)  # 3.5 of 6: as good
    _meet(svc, "fake-model", "cheaper-but-worse", 1, 1, 1, 1, 0, 0)  # it scored 2 of 6: worse
    _meet(svc, "barely-compared", "fake-model", 1, 1, 1, 1)  # 4 outcomes: too few
    _meet(svc, "dearer-model", "fake-model", 1, 1, 1, 1, 1)  # as good, but dearer

    for spec in ({"name": "month", "scope": "global", "period": "monthly", "limit_usd": 10},
                 {"name": "ana", "scope": "user", "target": "ana", "period": "weekly", "limit_usd": 5},
                 {"name": "model-today", "scope": "model", "target": "fake-model", "period": "daily",
                  "limit_usd": 0.4},
                 {"name": "forever", "scope": "global", "period": "total", "limit_usd": 100}):
        svc.budgets.create(BudgetSpec(**spec))
    return svc


def test_forecast_equals_the_figures_worked_out_by_hand(seeded):
    forecast = spend_forecast(seeded.engine, seeded.budgets.store.list(), NOW)
    month_to_date = 1.0 + 7 * 0.7 + 1.4 + 0.5
    rate = (7 * 0.7 + 1.4) / 7  # March 13-19; today's 0.5 is left out
    days_left = (datetime(2026, 4, 1) - NOW) / timedelta(days=1)
    assert forecast["month_to_date"] == pytest.approx(month_to_date)
    assert forecast["daily_rate"] == pytest.approx(rate)
    assert (forecast["rate_since"], forecast["rate_until"]) == ("2026-03-13T00:00:00Z", "2026-03-20T00:00:00Z")
    assert forecast["projected_month_end"] == pytest.approx(month_to_date + rate * days_left)

    runs = {b["name"]: b for b in forecast["budgets"]}
    month_runs_out = NOW + timedelta(days=(10 - month_to_date) / rate)
    assert runs["month"]["runs_out_at"] == month_runs_out.isoformat() + "Z"
    assert runs["month"]["runs_out_at"].startswith("2026-03-22")
    assert runs["ana"]["spend"] == 0 and runs["ana"]["daily_rate"] == pytest.approx(1.4 / 7)
    assert runs["ana"]["runs_out_at"] is None  # 25 days at 0.2 a day: after the week resets
    assert runs["model-today"]["spend"] == pytest.approx(0.5)
    assert runs["model-today"]["runs_out_at"] == NOW.isoformat() + "Z"  # already spent
    total_spend = 2.0 + 3.0 + month_to_date
    assert runs["forever"]["spend"] == pytest.approx(total_spend)
    forever = NOW + timedelta(days=(100 - total_spend) / rate)
    assert runs["forever"]["runs_out_at"] == forever.isoformat() + "Z"  # a total budget never resets


def test_recommendations_equal_the_figures_worked_out_by_hand(seeded):
    outcomes = [(p.model_a, p.model_b, p.score_a) for p in seeded.comparison_store.comparisons.pairs()]
    prices = {"fake-model": FakeModel().pricing, "cheap-model": CHEAP,
              **{name: seeded.registry.models[name].pricing
                 for name in ("cheaper-but-worse", "barely-compared", "dearer-model")}}
    advice = recommendations(seeded.engine, prices, outcomes, NOW)
    assert advice["since"] == "2026-02-18T12:00:00Z"

    spent = 3.0 + 1.0 + 7 * 0.7 + 1.4 + 0.5  # the 11 priced calls since Feb 18
    repriced = (10800 * 0.1 + 200 * 0.05 + 5500 * 0.2) / 1e6  # 11 000 tokens in (200 of them cached), 5 500 out
    [cheaper] = advice["cheaper_models"]
    assert (cheaper["model"], cheaper["candidate"], cheaper["outcomes"]) == ("fake-model", "cheap-model", 6)
    assert cheaper["candidate_score"] == pytest.approx(3.5 / 6)
    assert (cheaper["input_tokens"], cheaper["cached_tokens"], cheaper["output_tokens"]) == (11000, 200, 5500)
    assert cheaper["current_cost"] == pytest.approx(spent)
    assert cheaper["candidate_cost"] == pytest.approx(repriced)
    assert cheaper["monthly_savings"] == pytest.approx(spent - repriced)

    cache = advice["cache"]
    assert (cache["groups"], cache["repeated_calls"]) == (2, 6 + 1)
    assert cache["monthly_savings"] == pytest.approx(6 * 0.7 + 0.5)  # every repeat after the first call
    daily, hello = cache["top"]
    assert (daily["prompt"], daily["calls"]) == ("daily report", 7)
    assert daily["cost"] == pytest.approx(4.9) and daily["savings"] == pytest.approx(4.2)
    assert (hello["prompt"], hello["calls"], hello["savings"]) == ("hello", 2, pytest.approx(0.5))
    assert repeated_prompts(seeded.engine, NOW - timedelta(days=30), NOW, owner="someone-else")["groups"] == 0


def test_the_endpoints_answer_the_same_json(seeded, client):
    forecast = client.get("/api/costs/forecast")
    assert forecast.status_code == 200
    assert forecast.get_json() == spend_forecast(seeded.engine, seeded.budgets.store.list(), NOW)
    advice = client.get("/api/costs/recommendations").get_json()
    assert advice["cheaper_models"][0]["candidate"] == "cheap-model"
    assert advice["cache"]["monthly_savings"] == pytest.approx(6 * 0.7 + 0.5)
    page = client.get("/dashboard/costs")
    assert page.status_code == 200 and "cheap-model" in page.text and "daily report" in page.text
    assert "2026-03-22" in page.text


def _token(client) -> str:
    match = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/dashboard/budgets").text)
    assert match is not None
    return match.group(1)


def _api_budget(client, name: str) -> dict | None:
    return next((b for b in client.get("/api/budgets").get_json()["budgets"] if b["name"] == name), None)


def test_budget_forms_create_edit_and_delete(client):
    token = _token(client)
    created = client.post("/dashboard/budgets", data={
        "csrf_token": token, "name": "team", "scope": "model", "target": "fake", "period": "monthly",
        "limit_usd": "5", "alert_thresholds": "1.0, 0.5", "webhook_url": "https://8.8.8.8/hook", "hard_limit": "on"})
    assert created.status_code == 302 and created.headers["Location"] == "/dashboard/budgets"
    budget = _api_budget(client, "team")
    assert budget is not None
    assert (budget["target"], budget["limit_usd"], budget["hard_limit"]) == ("fake-model", 5.0, True)
    assert budget["alert_thresholds"] == [0.5, 1.0] and budget["webhook_url"] == "https://8.8.8.8/hook"
    assert "team" in client.get("/dashboard/budgets").text

    edited = client.post(f"/dashboard/budgets/{budget['id']}", data={
        "csrf_token": token, "name": "team", "scope": "model", "target": "fake-model", "period": "weekly",
        "limit_usd": "7.5", "alert_thresholds": "0.9"})
    assert edited.status_code == 302
    budget = _api_budget(client, "team")
    assert (budget["limit_usd"], budget["period"], budget["hard_limit"]) == (7.5, "weekly", False)
    assert budget["alert_thresholds"] == [0.9] and budget["webhook_url"] is None

    deleted = client.post(f"/dashboard/budgets/{budget['id']}/delete", data={"csrf_token": token})
    assert deleted.status_code == 302 and _api_budget(client, "team") is None


@pytest.mark.parametrize(("form", "status", "shown"), [
    ({"name": "x", "scope": "global", "period": "daily", "limit_usd": "-1"}, 400, "limit_usd"),
    ({"name": "x", "scope": "user", "period": "daily", "limit_usd": "1"}, 400, "target"),
    ({"name": "x", "scope": "global", "period": "daily", "limit_usd": "lots"}, 400, "limit_usd"),
    ({"name": "x", "scope": "global", "period": "daily", "limit_usd": "1", "alert_thresholds": "0.5, high"}, 400,
     "alert_thresholds.1"),
    ({"name": "x", "scope": "global", "period": "daily", "limit_usd": "1", "webhook_url": "ftp://x"}, 400,
     "webhook_url"),
    ({"name": "taken", "scope": "global", "period": "daily", "limit_usd": "1"}, 409, "taken"),
])
def test_a_refused_form_is_shown_with_its_reasons(client, form, status, shown):
    client.post("/api/budgets", json={"name": "taken", "scope": "global", "period": "daily", "limit_usd": 1})
    refused = client.post("/dashboard/budgets", data={"csrf_token": _token(client), **form})
    assert refused.status_code == status
    assert 'role="alert"' in refused.text and shown in refused.text
    assert client.get("/api/budgets").get_json()["count"] == 1


def test_edits_of_a_missing_or_broken_budget_are_refused_in_the_page(client):
    budget = client.post("/api/budgets", json={"name": "u", "scope": "user", "target": "ana", "period": "daily",
                                               "limit_usd": 1}).get_json()
    token = _token(client)
    blank_target = {"csrf_token": token, "name": "u", "scope": "user", "period": "daily", "limit_usd": "1"}
    refused = client.post(f"/dashboard/budgets/{budget['id']}", data=blank_target)
    assert refused.status_code == 400 and "target" in refused.text
    assert client.post("/dashboard/budgets/999999", data=blank_target).status_code == 404
    assert client.post("/dashboard/budgets/999999/delete", data={"csrf_token": token}).status_code == 404


def test_a_budget_form_without_its_csrf_token_is_refused(client):
    client.get("/dashboard/budgets")
    form = {"name": "x", "scope": "global", "period": "daily", "limit_usd": "1"}
    assert client.post("/dashboard/budgets", data=form).status_code == 400
    assert client.post("/dashboard/budgets", data={**form, "csrf_token": "forged"}).status_code == 400
    assert client.get("/api/budgets").get_json()["count"] == 0


def test_a_long_window_is_grouped_on_its_newest_calls_and_scaled_to_the_window(seeded, monkeypatch):
    """Past SAMPLE_CALLS calls, only the newest are grouped, and the figures are scaled by the window's calls."""
    from collections import Counter

    from monitoring import cost_recommendations, rollup_reads

    since = NOW - timedelta(days=30)
    rows = [r for r in seeded.request_log.list(10_000, since=since, until=NOW)]  # newest first
    monkeypatch.setattr(cost_recommendations, "SAMPLE_CALLS", len(rows) - 2)
    sample = rows[:len(rows) - 2]
    eligible = [r for r in sample if r["status"] == "success" and r["operation"] == "chat" and r["cache"] is None
                and r["prompt"] is not None and r["source"] not in cost_recommendations.REPEAT_SOURCES_LEFT_OUT]
    groups = Counter((r["model"], r["prompt"]) for r in eligible)
    repeats = {key for key, count in groups.items() if count > 1}
    savings = sum(sum(r["cost"] or 0.0 for r in eligible if (r["model"], r["prompt"]) == key)
                  - (min((r for r in eligible if (r["model"], r["prompt"]) == key), key=lambda r: r["id"])["cost"]
                     or 0.0) for key in repeats)
    window_calls = sum(float(sums[c]) for sums in rollup_reads.totals_by_model(seeded.engine, since, NOW).values()
                       for c in ("n_success", "n_error", "n_rejected", "n_cancelled"))
    result = repeated_prompts(seeded.engine, since, NOW)
    scale = window_calls / len(sample)
    assert result["sampled"] == {"calls": len(sample), "scale": pytest.approx(scale)}
    assert result["groups"] == len(repeats)
    assert result["monthly_savings"] == pytest.approx(savings * scale)
