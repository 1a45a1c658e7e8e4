"""The budget hook on the managed call path: reserve the worst-case cost before a call, settle and alert after.

The database arbitrates: reservers of a budget serialize on its row (FOR UPDATE on PostgreSQL, the
BEGIN IMMEDIATE write lock on SQLite), so concurrent calls and processes can never overshoot a hard
limit beyond what was reserved.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from models.call_path import CACHE_HIT, Call
from models.errors import CallRefusedError
from models.results import GenerationResult
from monitoring.budget_store import CallScope
from monitoring.budgets import BudgetService, spend_in_window
from monitoring.webhooks import WebhookNotifier
from monitoring.windows import BudgetWindow, period_window
from storage.database import read, write

log = logging.getLogger(__name__)

# A reservation older than this belongs to a call whose process died; it no longer holds budget.
RESERVATION_TTL = timedelta(hours=1)
EPSILON = 1e-12  # float tolerance, so a call that exactly fills a budget is allowed
RESERVED_KEY = "budget_reserved"
APPLICABLE_KEY = "budgets"


class BudgetExceededError(CallRefusedError):
    """A hard budget has no room for this call's worst-case cost; refused before the provider is called."""

    code = "budget_exceeded"
    http_status = 402


class BudgetGuard:
    """A `CallHook`: hard limits refuse in `before_call`; `after_call` releases and raises threshold alerts.

    The budgets are current with every call (`BudgetService.applicable`) and read again, locked, inside the
    reservation's transaction: a budget created or changed by any process holds from the next call on.
    """

    def __init__(self, budgets: BudgetService, notifier: WebhookNotifier | None = None, *,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.budgets = budgets
        self.store = budgets.store
        self.notifier = notifier
        self.clock = clock or budgets.clock
        self._alerted: set[tuple[int, datetime, float]] = set()
        self._alerted_lock = threading.Lock()

    def before_call(self, call: Call[Any]) -> None:
        """Reserve the call's worst case in every hard budget it counts against, or refuse it.

        The worst case uses the model's free input bound; only when that would refuse is the input counted
        exactly (for Gemini, a countTokens request), so a call within budget costs no extra round trip.
        A call answered from the response cache costs nothing, so no budget refuses it.
        """
        if CACHE_HIT in call.extras:
            return
        scope = _scope(call)
        applicable = self.budgets.applicable(scope)
        call.extras[APPLICABLE_KEY] = applicable
        if not any(b["hard_limit"] for b in applicable):
            return
        bound = call.worst_case_cost(call.input_token_bound())
        if not bound:  # zero-cost (or unpriced) models are never blocked by cost budgets
            return
        try:
            self._reserve(call, scope, bound)
        except BudgetExceededError:
            exact = call.worst_case_cost(call.exact_input_tokens())
            if exact is None or exact >= bound:
                raise
            self._reserve(call, scope, exact)

    def _reserve(self, call: Call[Any], scope: CallScope, amount: float) -> None:
        now = self.clock()
        with write(self.budgets.engine) as conn:
            reservations = []
            for budget in self.store.applicable(conn, scope, hard_only=True):  # fresh and locked
                window = period_window(budget["period"], now)
                # Reservations first: a call settling meanwhile commits its cost before dropping its
                # reservation, so with PostgreSQL's per-statement snapshots it is counted at least once.
                held = self.store.reserved(conn, budget["id"], window.start, now - RESERVATION_TTL)
                spend = spend_in_window(conn, budget, window)
                if spend + held + amount > budget["limit_usd"] + EPSILON:
                    raise _refusal(budget, window, spend, held, amount)
                reservations.append((budget, window))
            for budget, window in reservations:
                self.store.reserve(conn, budget["id"], window.start, call.request_id, amount)
        call.extras[RESERVED_KEY] = bool(reservations)

    def after_call(self, call: Call[Any], result: GenerationResult) -> None:
        """Settle: the call's real cost is in the request log by now, so its reservation goes."""
        reserved, applicable = call.extras.pop(RESERVED_KEY, False), call.extras.get(APPLICABLE_KEY)
        if not (reserved or (applicable and result.cost)):
            return  # the common case: no budget concerns this call
        now = self.clock()
        if reserved:
            self.store.release(call.request_id, now - RESERVATION_TTL)
        if applicable and result.cost:
            self.check_alerts(applicable, now)

    def check_alerts(self, applicable: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        """Persist one alert per crossed threshold per window (the database de-duplicates across processes)."""
        created = []
        for budget in applicable:
            window = period_window(budget["period"], now)
            pending = [t for t in budget["alert_thresholds"] if not self._seen(budget["id"], window.start, t)]
            if not pending:
                continue
            with read(self.budgets.engine) as conn:
                spend = spend_in_window(conn, budget, window)
            for threshold in pending:
                if spend + EPSILON < threshold * budget["limit_usd"]:
                    continue
                alert = self.store.add_alert(
                    budget_id=budget["id"], budget_name=budget["name"], threshold=threshold,
                    window_start=window.start, window_end=window.end, spend=spend, limit_usd=budget["limit_usd"],
                    webhook_status="pending" if budget["webhook_url"] else None,
                )
                self._remember(budget["id"], window.start, threshold)
                if alert is not None:
                    created.append(alert)
                    self._notify(budget, alert, window)
        return created

    def _seen(self, budget_id: int, start: datetime, threshold: float) -> bool:
        with self._alerted_lock:
            return (budget_id, start, threshold) in self._alerted

    def _remember(self, budget_id: int, start: datetime, threshold: float) -> None:
        with self._alerted_lock:
            self._alerted.add((budget_id, start, threshold))

    def _notify(self, budget: dict[str, Any], alert: dict[str, Any], window: BudgetWindow) -> None:
        if not (budget["webhook_url"] and self.notifier):
            return
        payload = {
            "event": "budget_threshold_crossed", "alert_id": alert["id"], "budget_id": budget["id"],
            "budget": budget["name"], "scope": budget["scope"], "target": budget["target"],
            "period": budget["period"], "threshold": alert["threshold"], "spend": alert["spend"],
            "limit_usd": budget["limit_usd"], "window_start": window.start.isoformat() + "Z",
            "resets_at": window.resets_at,
        }
        self.notifier.send(budget["webhook_url"], payload, alert["id"])


def _scope(call: Call[Any]) -> CallScope:
    context = call.context
    return CallScope(call.model.name, context.user_id, context.api_key_id, tuple(context.tags or ()))


def _refusal(budget: dict[str, Any], window: BudgetWindow, spend: float, held: float,
             amount: float) -> BudgetExceededError:
    return BudgetExceededError(
        f"Budget {budget['name']!r} has no room for this call: spent ${spend:.6f} "
        f"(+${held:.6f} reserved by calls in flight) of ${budget['limit_usd']:.6f}; "
        f"this call may cost up to ${amount:.6f}",
        details={
            "budget": {"id": budget["id"], "name": budget["name"], "scope": budget["scope"],
                       "target": budget["target"], "period": budget["period"]},
            "spend": spend, "reserved": held, "requested": amount, "limit": budget["limit_usd"],
            "resets_at": window.resets_at,
        },
    )
