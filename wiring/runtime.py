"""What every managed call against one database shares: the engine, the request log, prices and the hooks."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from sqlalchemy import Engine

from core.settings import Settings, get_settings
from models.cache.policy import CachePolicy
from models.cache.response_cache import ResponseCache
from models.cache.semantic import SemanticPolicy
from models.cache.semantic_index import SemanticIndex
from models.cache.stores import backend_for
from models.call_path import CallHook, CallPath, PromptLogging
from models.pricing import PricingTable
from models.request_log import RequestLogRepository
from models.routing.breaker_store import breaker_store_for
from models.routing.breakers import CircuitBreakers
from monitoring.budget_guard import BudgetGuard
from monitoring.budgets import BudgetService
from monitoring.webhook_policy import WebhookPolicy
from monitoring.webhooks import WebhookNotifier
from storage.change_stamp import ChangeStamp
from storage.database import get_engine


@dataclass(frozen=True)
class Runtime:
    """Built once per settings and database; every registry and standalone model of it calls through its hooks."""

    settings: Settings
    engine: Engine
    request_log: RequestLogRepository
    pricing: PricingTable
    budgets: BudgetService
    hooks: tuple[CallHook, ...]
    breakers: CircuitBreakers
    cache: ResponseCache

    def call_path(self) -> CallPath:
        """A call path with the standard hooks; each registry gets its own, so hooks it adds stay its own.
        The circuit breakers are the runtime's: one per deployment, whichever registry calls it."""
        return CallPath(self.request_log, self.hooks, PromptLogging.from_settings(self.settings), self.breakers,
                        self.budgets.share_used, self.cache)


def build_runtime(settings: Settings, engine: Engine) -> Runtime:
    webhooks = WebhookPolicy(allow_private=settings.webhook_allow_private)
    budgets = BudgetService(engine, webhook_policy=webhooks)
    guard = BudgetGuard(budgets, WebhookNotifier(webhooks, on_result=budgets.store.set_webhook_status))
    breakers = CircuitBreakers(breaker_store_for(engine, settings.redis_url))
    every_model = None
    if settings.cache_enabled:
        every_model = CachePolicy(ttl_s=settings.cache_ttl_seconds,
                                  semantic=SemanticPolicy() if settings.cache_semantic else None)
    cache = ResponseCache(backend_for(engine, settings.cache_store_url), default_policy=every_model,
                          memory_bytes=settings.cache_memory_mb * 1024 * 1024,
                          cleared=None if settings.cache_store_url else ChangeStamp(engine, "cache"),
                          semantic=SemanticIndex(engine))
    return Runtime(settings=settings, engine=engine, request_log=RequestLogRepository(engine),
                   pricing=PricingTable.for_settings(settings), budgets=budgets, hooks=(guard,), breakers=breakers,
                   cache=cache)


_runtimes: dict[tuple[Settings, Engine], Runtime] = {}
_runtimes_lock = threading.Lock()


def runtime_for(settings: Settings, engine: Engine | None = None) -> Runtime:
    """The process-wide runtime of these settings (and engine, when one is given instead of theirs)."""
    engine = engine or get_engine(settings=settings)
    key = (settings, engine)
    with _runtimes_lock:
        runtime = _runtimes.get(key)
        if runtime is None:
            runtime = _runtimes[key] = build_runtime(settings, engine)
        return runtime


def default_runtime() -> Runtime:
    """The runtime of the process settings (environment and `.env`): what default constructors use."""
    return runtime_for(get_settings())
