"""Request and token counts per clock minute, by subject (an API key's id, or a group deployment's
`deployment_subject`), kept in the database so that every thread, worker and process admits calls against the
same counts.

A call is admitted by one conditional upsert (INSERT ... ON CONFLICT DO UPDATE ... WHERE the window has room
... RETURNING): PostgreSQL locks the window's row and re-checks the condition on its latest version, and SQLite
runs one writer at a time, so concurrent admitters can never together pass a key's RPM.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Engine, Integer, String, Table, and_, bindparam, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from storage.database import metadata, write

key_usage = Table(
    "key_usage",
    metadata,
    Column("key_id", String(40), primary_key=True),  # the subject: an API key id, or a deployment's
    Column("window_start", DateTime, primary_key=True),  # the clock minute (UTC) the counts belong to
    Column("requests", Integer, nullable=False),  # calls admitted in the minute
    Column("tokens", BigInteger, nullable=False),  # tokens of the calls that ended in the minute
)

WINDOW = timedelta(minutes=1)
_COUNTS = select(key_usage.c.requests, key_usage.c.tokens).where(
    key_usage.c.key_id == bindparam("key_id"), key_usage.c.window_start == bindparam("window_start"))
_PRUNE = delete(key_usage).where(key_usage.c.key_id == bindparam("key_id"),
                                 key_usage.c.window_start < bindparam("window_start"))


@dataclass(frozen=True)
class MinuteWindow:
    """The clock minute `now` falls in: limits count per minute and reset when the next one starts."""

    start: datetime
    now: datetime

    @classmethod
    def at(cls, now: datetime) -> MinuteWindow:
        return cls(now.replace(second=0, microsecond=0), now)

    @property
    def retry_after(self) -> int:
        """Whole seconds until the next minute begins (at least 1), for the `Retry-After` header."""
        return max(1, math.ceil((self.start + WINDOW - self.now).total_seconds()))


@dataclass(frozen=True)
class WindowCounts:
    """What a key has used of a window, for the refusal to say which limit it reached."""

    requests: int
    tokens: int


def deployment_subject(name: str) -> str:
    """A deployment's counter id: fixed length whatever its name, and never an API key's id."""
    return "deployment:" + hashlib.sha256(name.encode()).hexdigest()[:29]


class MinuteUsage:
    """The counters: `admit` before a call, `add_tokens` after it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def admit(self, key_id: str, window: MinuteWindow, *, rpm: int | None, tpm: int | None) -> WindowCounts | None:
        """Count one call in `window` if the key is below `rpm` calls and `tpm` tokens there (None: no limit).

        Returns None when admitted, else the window's counts (the call is not counted).
        """
        statement = _admit_statement(self.engine.dialect.name, rpm is not None, tpm is not None)
        limits = {"max_requests": rpm, "max_tokens": tpm}
        params = {"key_id": key_id, "window_start": window.start, "requests": 1, "tokens": 0,
                  **{name: value for name, value in limits.items() if value is not None}}
        with write(self.engine) as conn:
            admitted = conn.execute(statement, params).scalar()
            if admitted is None:
                row = conn.execute(_COUNTS, {"key_id": key_id, "window_start": window.start}).one()
                return WindowCounts(row.requests, row.tokens)
            if admitted == 1:  # the key's first call this minute: drop its older windows
                conn.execute(_PRUNE, {"key_id": key_id, "window_start": window.start})
        return None

    def add_tokens(self, key_id: str, window: MinuteWindow, tokens: int) -> None:
        """Add a finished call's tokens to the minute it ended in."""
        statement = _add_tokens_statement(self.engine.dialect.name)
        with write(self.engine) as conn:
            conn.execute(statement, {"key_id": key_id, "window_start": window.start, "requests": 0,
                                     "tokens": tokens})


def _insert(dialect: str) -> Any:
    return (sqlite_insert if dialect == "sqlite" else pg_insert)(key_usage)


@cache
def _admit_statement(dialect: str, rpm: bool, tpm: bool) -> Any:
    """Insert the window with this call, or add it to the window's calls where both limits leave room.

    Built once per dialect and limit combination, so SQLAlchemy compiles it once.
    """
    stmt = _insert(dialect)
    room = [key_usage.c.requests < bindparam("max_requests")] if rpm else []
    room += [key_usage.c.tokens < bindparam("max_tokens")] if tpm else []
    return stmt.on_conflict_do_update(index_elements=[key_usage.c.key_id, key_usage.c.window_start],
                                      set_={"requests": key_usage.c.requests + 1},
                                      where=and_(*room)).returning(key_usage.c.requests)


@cache
def _add_tokens_statement(dialect: str) -> Any:
    stmt = _insert(dialect)
    return stmt.on_conflict_do_update(index_elements=[key_usage.c.key_id, key_usage.c.window_start],
                                      set_={"tokens": key_usage.c.tokens + stmt.excluded.tokens})
