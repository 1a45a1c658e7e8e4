"""Rate limits on `/api/` and `/v1/` with Flask-Limiter: per API key, else per client IP; memory or Redis storage.

An unreachable shared store fails open: Flask-Limiter logs a warning and keeps the limits in each
process's memory until the store answers again (checked with a growing back-off), and `/health` reports
`"rate_limits": "degraded"`; no call fails because of it.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from core.settings import Settings

LIMITER_KEY = "rate_limiter"
STORE_TIMEOUT_SECONDS = 0.5  # a blackholed Redis host costs a call at most this much, not the OS's connect timeout


def _limit_key() -> str:
    key_id = g.get("api_key_id")
    return f"key:{key_id}" if key_id else f"ip:{get_remote_address()}"


# Redis connection options: an unreachable store costs each request at most this, then it fails open.
_STORE_OPTIONS: dict[str, Any] = {"socket_connect_timeout": STORE_TIMEOUT_SECONDS,
                                  "socket_timeout": STORE_TIMEOUT_SECONDS}


def register_rate_limits(app: Flask, settings: Settings) -> Limiter | None:
    """Attach a limiter when RATE_LIMIT is set; exceeding it answers a JSON 429 with Retry-After."""
    if not settings.rate_limit:
        return None
    limiter = Limiter(
        key_func=_limit_key,
        app=app,
        default_limits=[settings.rate_limit],
        storage_uri=settings.rate_limit_store_url or "memory://",
        storage_options=_STORE_OPTIONS,
        in_memory_fallback_enabled=True,
        swallow_errors=True,
        headers_enabled=True,
        strategy="fixed-window",
    )
    limiter.request_filter(lambda: not request.path.startswith(("/api/", "/v1/")))
    app.extensions[LIMITER_KEY] = limiter
    return limiter


def rate_limit_state(app: Flask) -> str:
    """`off` without RATE_LIMIT, `ok` while the store answers, `degraded` (limits kept per process) when not."""
    limiter: Limiter | None = app.extensions.get(LIMITER_KEY)
    if limiter is None:
        return "off"
    return "ok" if limiter.storage.check() else "degraded"
