"""The request log: one row per model call, success or failure; the single source of truth.

`operation` says what the call did: `chat` (a generation) or `embeddings`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Connection,
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    case,
    exists,
    false,
    func,
    literal,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError

from models import rollups
from storage.clock import utcnow
from storage.database import ID_TYPE, is_sqlite, metadata, read, write
from storage.group_commit import GroupCommit

request_log = Table(
    "request_log",
    metadata,
    Column("id", ID_TYPE, primary_key=True, autoincrement=True),
    Column("request_id", String(36), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("model", String(200), nullable=False),
    Column("provider", String(50), nullable=False),
    Column("operation", String(20), nullable=False, server_default="chat"),
    Column("source", String(20), nullable=False),
    Column("user_id", String(200)),
    Column("api_key_id", String(64)),
    Column("tags", JSON),
    Column("params", JSON),
    Column("stream", Boolean, nullable=False, default=False),
    Column("prompt", Text),
    Column("messages", JSON),
    Column("images", JSON),  # each image sent: its type and inline size, or its https URL; never its bytes
    Column("tool_calls", JSON),
    Column("response", Text),
    Column("input_tokens", Integer),
    Column("output_tokens", Integer),
    Column("thinking_tokens", Integer),
    Column("cached_tokens", Integer),
    Column("cache_write_tokens", Integer),  # prompt-cache writes, part of input_tokens (as cached_tokens are)
    Column("total_tokens", Integer),
    Column("latency", Float),
    Column("ttft", Float),
    Column("cost", Float),
    Column("status", String(20), nullable=False),
    Column("finish_reason", String(50)),
    Column("error_type", String(100)),
    Column("error_message", Text),
    # A group's attempts: each its own row, linked by the request id the client got and the attempt's index.
    Column("route_group", String(200)),
    Column("client_request_id", String(36)),
    Column("attempt", Integer),
    Column("degraded", Boolean, nullable=False, default=False, server_default=false()),
    # A cache hit: how it matched, and the original call's cost and tokens (never added to the counted ones).
    Column("cache", String(10)),
    Column("cost_saved", Float),
    Column("saved_input_tokens", Integer),
    Column("saved_output_tokens", Integer),
    # The registry prompt the call rendered; metrics per version read the index below.
    Column("prompt_name", String(100)),
    Column("prompt_version", Integer),
    Column("model_version", String(32)),  # the serving version that answered (models.version_manager)
    Index("ix_request_log_created_at", "created_at"),
    Index("ix_request_log_model_created_at", "model", "created_at"),
    Index("ix_request_log_user_created_at", "user_id", "created_at"),
    Index("ix_request_log_client_request_id", "client_request_id"),
    Index("ix_request_log_prompt_created_at", "prompt_name", "prompt_version", "created_at"),
)


# Built once: executing it with a parameter dict reuses SQLAlchemy's compiled-statement cache.
_INSERT = request_log.insert()


@dataclass
class RequestRecord:
    """One model call as stored. Token counts are the provider's; cost is fixed at record time."""

    request_id: str
    model: str
    provider: str
    source: str
    status: str
    created_at: datetime = field(default_factory=utcnow)
    operation: str = "chat"
    user_id: str | None = None
    api_key_id: str | None = None
    tags: list[str] | None = None
    params: dict[str, Any] | None = None
    stream: bool = False
    prompt: str | None = None
    messages: list[dict[str, Any]] | None = None
    images: list[dict[str, Any]] | None = None
    tool_calls: list[dict[str, Any]] | None = None
    response: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    thinking_tokens: int | None = None
    cached_tokens: int | None = None
    cache_write_tokens: int | None = None
    total_tokens: int | None = None
    latency: float | None = None
    ttft: float | None = None
    cost: float | None = None
    finish_reason: str | None = None
    error_type: str | None = None
    error_message: str | None = None
    route_group: str | None = None
    client_request_id: str | None = None
    attempt: int | None = None
    degraded: bool = False
    cache: str | None = None
    cost_saved: float | None = None
    saved_input_tokens: int | None = None
    saved_output_tokens: int | None = None
    prompt_name: str | None = None
    prompt_version: int | None = None
    model_version: str | None = None


class RequestLogRepository:
    """Reads and writes `request_log`; each method is its own unit of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._group_commit: GroupCommit[RequestRecord] = GroupCommit(self._insert_batch, item_error=_one_rows_fault)

    def insert(self, record: RequestRecord) -> None:
        """Returns once the row and its rollups are committed; concurrent inserts share one transaction."""
        self._group_commit.submit(record)

    def _insert_batch(self, records: Sequence[RequestRecord]) -> None:
        with write(self.engine) as conn:
            insert_records(conn, records)

    def update(self, request_id: str, **values: Any) -> bool:
        where = request_log.c.request_id == request_id
        with write(self.engine) as conn:
            before = conn.execute(select(request_log).where(where)).mappings().first()
            result = conn.execute(update(request_log).where(where).values(**values))
            if before is not None:  # move the row's rollup contribution from its old to its new values
                rollups.apply_rows(conn, [(before, -1), ({**before, **values}, 1)])
            return result.rowcount > 0

    def get(self, request_id: str) -> dict[str, Any] | None:
        with read(self.engine) as conn:
            row = conn.execute(
                select(request_log).where(request_log.c.request_id == request_id)
            ).mappings().first()
        return _row_dict(row) if row else None

    def list(
        self,
        limit: int = 100,
        *,
        model: str | None = None,
        status: str | None = None,
        source: str | None = None,
        user_id: str | None = None,
        api_key_id: str | None = None,
        operation: str | None = None,
        client_request_id: str | None = None,
        tag: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, optionally filtered (by `api_key_id`: one tenant's calls; by `client_request_id`: the
        attempts a group made for one client request; by `since`/`until`: `[since, until)` on `created_at`).

        `before` is a cursor: the `id` of the last row of the previous page. Rows come in (`created_at`, `id`) order,
        which every `(column, created_at)` index serves as it is, so a filtered page, first or later, reads only
        its own rows however long the log is (ordering by `id` alone made SQLite sort every row of a model).
        """
        log = request_log.c
        query = select(request_log).order_by(log.created_at.desc(), log.id.desc()).limit(limit)
        filters = {"model": model, "status": status, "source": source, "user_id": user_id, "api_key_id": api_key_id,
                   "operation": operation, "client_request_id": client_request_id}
        for column, value in filters.items():
            if value is not None:
                query = query.where(log[column] == value)
        bounds = [log.created_at >= since if since else None, log.created_at < until if until else None,
                  _before(before) if before is not None else None]
        query = query.where(*(bound for bound in bounds if bound is not None))
        with read(self.engine) as conn:
            if tag is not None:
                elements = tag_elements(conn).table_valued("value").alias("tag")
                query = query.where(exists(select(literal(1)).select_from(elements).where(elements.c.value == tag)))
            return [_row_dict(row) for row in conn.execute(query).mappings()]

    def served_by_group(self, since: datetime) -> dict[str, dict[str, int]]:
        """Successful attempts per group and deployment since `since`: how a group actually split its traffic.
        The rollups are keyed by model, not group, so this reads the log (bounded by the `created_at` index)."""
        log = request_log.c
        query = (select(log.route_group, log.model, func.count().label("served"))
                 .where(log.created_at >= since, log.route_group.is_not(None), log.status == "success")
                 .group_by(log.route_group, log.model))
        served: dict[str, dict[str, int]] = {}
        with read(self.engine) as conn:
            for row in conn.execute(query):
                served.setdefault(row.route_group, {})[row.model] = int(row.served)
        return served

    def count(self, **filters: Any) -> int:
        query = select(func.count()).select_from(request_log)
        for column, value in filters.items():
            query = query.where(request_log.c[column] == value)
        with read(self.engine) as conn:
            return int(conn.execute(query).scalar_one())


def tag_elements(conn: Connection) -> Any:
    """The elements of each row's tags array (a table-valued function to join or correlate); `null` or non-array
    tags give none."""
    tags = request_log.c.tags
    if is_sqlite(conn):
        return func.json_each(case((func.json_type(tags) == "array", tags), else_=literal("[]")))
    return func.json_array_elements_text(case((func.json_typeof(tags) == "array", tags),
                                              else_=literal_column("'[]'::json")))


def insert_records(conn: Connection, records: Sequence[RequestRecord]) -> None:
    """Insert rows and their rollups on the caller's transaction, so the rollups never drift from the log."""
    rows = [vars(record) for record in records]
    conn.execute(_INSERT, rows)
    rollups.apply_rows(conn, [(row, 1) for row in rows])


def _one_rows_fault(exc: Exception) -> bool:
    """A constraint violation or a bad value is one row's fault; a database error (lost connection,
    lock timeout) is not, and retrying the batch row by row would only repeat it."""
    return isinstance(exc, (IntegrityError, DataError)) or not isinstance(exc, DBAPIError)


def _before(row_id: int) -> Any:
    """Rows after `row_id`'s in the log's newest-first order: a row-value comparison that indexes serve."""
    created_at = select(request_log.c.created_at).where(request_log.c.id == row_id).scalar_subquery()
    return tuple_(request_log.c.created_at, request_log.c.id) < tuple_(created_at, row_id)


def _row_dict(row: Any) -> dict[str, Any]:
    data = dict(row)
    created = data.get("created_at")
    if isinstance(created, datetime):
        data["created_at"] = created.isoformat() + "Z"
    return data
