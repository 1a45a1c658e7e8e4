"""The original `RequestLogger` API, kept for compatibility, over the same `request_log` table.

It logs calls made outside the managed path: a managed call is already in the log, once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine

from storage.database import engine_for


class RequestLogger:
    """Two-step logging (`log_request`, then `log_response`) on `db_path` (an Engine, a URL or, as originally, a
    SQLite path; default: the configured database)."""

    def __init__(self, db_path: Engine | str | None = None) -> None:
        from models.model_store import ModelStore  # the log lives with the call path that writes it
        from models.request_log import RequestLogRepository

        engine = engine_for(db_path)
        self.repository = RequestLogRepository(engine)
        self.models = ModelStore(engine)

    def log_request(self, model_id: int | str, prompt: str, *, provider: str = "unknown",
                    user_id: str | None = None) -> str:
        """Record that a call of a model (named by its id, as originally, or by name) started; returns the
        request id to pass to `log_response`."""
        from models.request_log import RequestRecord

        request_id = str(uuid.uuid4())
        self.repository.insert(
            RequestRecord(
                request_id=request_id, model=self.models.name_for(model_id), provider=provider, source="library",
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
    ) -> str | None:
        """Complete the row written by `log_request`; returns its id (the response shares the request's row),
        or None for an unknown request id."""
        updated = self.repository.update(
            request_id, response=response, total_tokens=tokens, latency=latency, cost=cost,
            status="success" if success else "error",
            error_type=None if success else "error", error_message=error,
        )
        return request_id if updated else None

    def get_request_history(self, limit: int = 10) -> list[dict[str, Any]]:
        """Newest first; each row also has the original's `timestamp` and `tokens`."""
        return [{**row, "timestamp": row["created_at"], "tokens": row["total_tokens"]}
                for row in self.repository.list(limit)]

    def get_total_requests(self) -> int:
        """As originally: every logged request, pending ones included."""
        return self.repository.count()
