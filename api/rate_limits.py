"""Rate limits on `/api/` with Flask-Limiter: per API key, else per client IP; memory or Redis storage."""

from __future__ import annotations

from flask import Flask, g, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from core.settings import Settings


def _limit_key() -> str:
    key_id = g.get("api_key_id")
    return f"key:{key_id}" if key_id else f"ip:{get_remote_address()}"


def register_rate_limits(app: Flask, settings: Settings) -> Limiter | None:
    """Attach a limiter when RATE_LIMIT is set; exceeding it answers a JSON 429 with Retry-After."""
    if not settings.rate_limit:
        return None
    limiter = Limiter(
        key_func=_limit_key,
        app=app,
        default_limits=[settings.rate_limit],
        storage_uri=settings.rate_limit_storage_url or "memory://",
        headers_enabled=True,
        strategy="fixed-window",
    )
    limiter.request_filter(lambda: not request.path.startswith("/api/"))
    return limiter
