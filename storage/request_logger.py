"""The original `RequestLogger` API, kept for compatibility, over the same `request_log` table."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine

from storage.database import get_engine


class RequestLogger:
    """Two-step logging (`log_request`, then `log_response`) for callers outside the managed path."""

    def __init__(self, engine: Engine | None = None) -> None:
        from models.request_log import RequestLogRepository  # the log lives with the call path that writes it

        self.repository = RequestLogRepository(engine or get_engine())

    def log_request(
        self, model_name: str, prompt: str, *, provider: str = "unknown", user_id: str | None = None
    ) -> str:
        """Record that a call started; returns the request id to pass to `log_response`."""
        from models.request_log import RequestRecord

        request_id = str(uuid.uuid4())
        self.repository.insert(
            RequestRecord(
                request_id=request_id, model=model_name, provider=provider, source="library",
                status="pending", prompt=prompt, user_id=user_id,
            )
        )
        return request_id

    def log_response(
        self,
        request_id: str,
        response: str | None,
        tokens: int | None = None,
        latency: float | None = None,
        cost: float | None = None,
        *,
        success: bool = True,
        error: str | None = None,
    ) -> bool:
        """Complete the row written by `log_request`."""
        return self.repository.update(
            request_id, response=response, total_tokens=tokens, latency=latency, cost=cost,
            status="success" if success else "error",
            error_type=None if success else "error", error_message=error,
        )

    def get_request_history(self, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first."""
        return self.repository.list(limit)
