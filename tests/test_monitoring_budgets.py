"""Budgets: hard limits refuse before the provider, hold under 20 concurrent calls, reset with their window."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from models.call_path import CallPath
from models.model_registry import ModelRegistry
from models.pricing import ModelPricing
from models.request_log import RequestLogRepository
from monitoring.budget_guard import BudgetExceededError, BudgetGuard
from monitoring.budgets import BudgetService, BudgetSpec
from monitoring.cost_tracker import CostTracker
from monitoring.webhook_policy import WebhookPolicy
from monitoring.webhooks import WebhookNotifier
from monitoring.windows import period_window
from storage.clock import utcnow
from tests.fakes import FakeModel

TEN_WORDS = " ".join(["w"] * 10)
CALL_COST = (1 * 1.0 + 10 * 2.0) / 1e6  # prompt "hello" + 10 output words: worst case == actual


@pytest.fixture
def guarded(engine, settings):
    """A registry on the parametrized database with the budget guard attached, and a slow fake model."""
    local_receivers = WebhookPolicy(allow_private=True)  # the webhook receiver below listens on 127.0.0.1
    budgets = BudgetService(engine, webhook_policy=local_receivers)
    notifier = WebhookNotifier(local_receivers, backoff=0.01, on_result=budgets.store.set_webhook_status)
    guard = BudgetGuard(budgets, notifier)
    registry = ModelRegistry(engine, settings=settings, register_defaults=False,
                             call_path=CallPath(RequestLogRepository(engine), [guard]))
    model = FakeModel(delay=0.05)
    registry.register_model(model)
    return registry, model, budgets, guard


def _budget(budgets: BudgetService, **fields) -> dict:
    spec = {"name": "b", "scope": "global", "period": "daily", "limit_usd": 1e-4, "hard_limit": True, **fields}
    return budgets.create(BudgetSpec(**spec))


def _call(model, **kwargs):
    return model.generate("hello", max_tokens=10, **kwargs)


def test_twenty_concurrent_calls_never_overshoot_a_hard_limit(guarded, engine):
    _registry, model, budgets, _ = guarded
    _budget(budgets)
    model.enqueue(*[TEN_WORDS] * 20)
    outcomes: list[object] = []
    barrier = threading.Barrier(20)

    def worker() -> None:
        barrier.wait()
        try:
            outcomes.append(_call(model).cost)
        except BudgetExceededError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    costs = [o for o in outcomes if isinstance(o, float)]
    assert len(costs) == 4 and len(model.calls) == 4  # floor(1e-4 / 2.1e-5): no fifth call ever fit
    assert sum(costs) <= 1e-4
    assert CostTracker(engine).get_total_cost() == pytest.approx(4 * CALL_COST)
    assert sum(isinstance(o, BudgetExceededError) for o in outcomes) == 16
    assert RequestLogRepository(engine).count(status="rejected") == 16


def test_refusal_names_budget_spend_limit_and_reset(guarded):
    _registry, model, budgets, _ = guarded
    budget = _budget(budgets, limit_usd=CALL_COST * 1.5)
    model.enqueue(TEN_WORDS)
    _call(model)
    with pytest.raises(BudgetExceededError) as refused:
        _call(model)
    details = refused.value.details
    assert details["budget"]["id"] == budget["id"]
    assert details["spend"] == pytest.approx(CALL_COST) and details["limit"] == CALL_COST * 1.5
    assert details["resets_at"] == period_window("daily").resets_at
    assert len(model.calls) == 1


def test_window_rollover_resets_spend(guarded):
    _registry, model, budgets, _ = guarded
    now = [utcnow()]
    budgets.clock = lambda: now[0]
    guarded[3].clock = budgets.clock
    _budget(budgets, limit_usd=CALL_COST)
    model.enqueue(TEN_WORDS, TEN_WORDS)
    _call(model)
    with pytest.raises(BudgetExceededError):
        _call(model)
    now[0] += timedelta(days=1)  # the next UTC day: a new window with nothing spent
    assert _call(model).success
    assert len(model.calls) == 2


def test_scoped_budgets_only_guard_their_user_or_model(guarded):
    registry, model, budgets, _ = guarded
    _budget(budgets, name="alice", scope="user", target="alice", limit_usd=CALL_COST / 2)
    _budget(budgets, name="other-model", scope="model", target="not-this-one", limit_usd=CALL_COST / 2)
    model.enqueue(TEN_WORDS)
    assert _call(model, user_id="bob").success
    with pytest.raises(BudgetExceededError):
        _call(model, user_id="alice")


def test_zero_cost_model_is_never_blocked(guarded, engine):
    registry, model, budgets, _ = guarded
    CostTracker(engine).track_cost("elsewhere", 1.0)  # the global budget is far exceeded
    _budget(budgets, limit_usd=0.5)
    free = FakeModel("free-model", pricing=ModelPricing(input_per_million=0, output_per_million=0))
    registry.register_model(free)
    assert free.generate("hello", max_tokens=10).success
    with pytest.raises(BudgetExceededError):
        _call(model)


def test_without_budgets_nothing_is_blocked(guarded):
    _registry, model, _budgets, _ = guarded
    assert _call(model).success


def test_one_alert_per_threshold_per_window_even_from_two_processes(guarded, engine):
    _registry, model, budgets, guard = guarded
    _budget(budgets, hard_limit=False)
    model.enqueue(*[TEN_WORDS] * 6)
    for _ in range(6):  # a soft budget never blocks: the 6th call exceeds 100% and still runs
        assert _call(model).success
    second_process = BudgetGuard(BudgetService(engine))
    assert second_process.check_alerts(budgets.store.list(), utcnow()) == []
    alerts = budgets.alerts()
    assert sorted(a["threshold"] for a in alerts) == [0.5, 0.8, 1.0]
    crossed_at = {a["threshold"]: a["spend"] for a in alerts}
    assert crossed_at[0.5] == pytest.approx(3 * CALL_COST) and crossed_at[1.0] == pytest.approx(5 * CALL_COST)


@pytest.fixture
def webhook_receiver():
    """A local HTTP endpoint that blocks until released, fails its first POST, then records payloads."""
    state = {"received": [], "failures_left": 1, "release": threading.Event()}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            state["release"].wait(5)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            if state["failures_left"] > 0:
                state["failures_left"] -= 1
                self.send_response(500)
            else:
                state["received"].append(body)
                self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    state["release"].set()
    server.shutdown()
    server.server_close()


def test_webhook_is_retried_in_the_background(guarded, webhook_receiver):
    _registry, model, budgets, guard = guarded
    _budget(budgets, hard_limit=False, alert_thresholds=[0.1], webhook_url=webhook_receiver["url"])
    model.enqueue(TEN_WORDS)
    assert _call(model).success  # returned while the webhook receiver is still blocked
    assert budgets.alerts()[0]["webhook_status"] == "pending"
    webhook_receiver["release"].set()
    assert guard.notifier.wait_idle(10)
    received = webhook_receiver["received"]
    assert [(p["event"], p["threshold"]) for p in received] == [("budget_threshold_crossed", 0.1)]
    alert = budgets.alerts()[0]
    assert (alert["webhook_status"], alert["webhook_attempts"], alert["webhook_error"]) == ("delivered", 2, None)


@pytest.mark.parametrize(("period", "now", "start", "end"), [
    ("daily", datetime(2026, 3, 10, 23, 59), datetime(2026, 3, 10), datetime(2026, 3, 11)),
    ("weekly", datetime(2026, 3, 15, 12), datetime(2026, 3, 9), datetime(2026, 3, 16)),  # Sunday -> Monday
    ("monthly", datetime(2026, 12, 31, 23), datetime(2026, 12, 1), datetime(2027, 1, 1)),
    ("total", datetime(2026, 12, 31), datetime(1970, 1, 1), None),
])
def test_budget_windows_are_utc_periods(period, now, start, end):
    window = period_window(period, now)
    assert (window.start, window.end) == (start, end)


def test_share_used_is_the_spent_part_of_the_named_budgets_window(engine):
    from models.request_log import RequestLogRepository, RequestRecord
    from monitoring.budgets import BudgetService, BudgetSpec

    budgets = BudgetService(engine)
    budgets.create(BudgetSpec(name="monthly", scope="global", period="monthly", limit_usd=2.0))
    RequestLogRepository(engine).insert(RequestRecord(request_id="spent", model="m", provider="fake", source="api",
                                                      status="success", cost=0.5))
    assert budgets.share_used("monthly") == 0.25
    assert budgets.share_used("nobody") is None
