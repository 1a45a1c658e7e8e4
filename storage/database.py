"""Engines, transactions and schema migrations for SQLite (default) and PostgreSQL.

A connection belongs to one unit of work: repositories open `read(engine)` or `write(engine)`
for each operation and never keep a connection between calls.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    BigInteger,
    Connection,
    CursorResult,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.pool import ConnectionPoolEntry

from core.settings import Settings, get_settings
from storage.sqlite_writer_lock import SQLiteWriterLock

metadata = MetaData()
# Surrogate keys: 64-bit on PostgreSQL; INTEGER on SQLite, where only that type autoincrements as the rowid.
ID_TYPE = BigInteger().with_variant(Integer, "sqlite")
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000

_engines: dict[tuple[str, int, int], Engine] = {}
_writer_locks: WeakKeyDictionary[Engine, SQLiteWriterLock] = WeakKeyDictionary()
_engines_lock = threading.Lock()


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def upsert_into(conn: Connection, table: Table) -> Any:
    """INSERT for `table` in the connection's dialect, which has `on_conflict_do_nothing` / `_do_update` (SQLite
    and PostgreSQL spell them alike), for writes that must not race a concurrent insert of the same key."""
    return (sqlite_insert if is_sqlite(conn) else pg_insert)(table)


def sqlite_file(engine: Engine) -> str | None:
    """The database file of a SQLite engine; None for an in-memory database or another backend."""
    database = engine.url.database
    return database if is_sqlite(engine) and database not in (None, "", ":memory:") else None


def create_db_engine(url: str, *, pool_size: int = 10, max_overflow: int = 10) -> Engine:
    """Create an engine with our per-connection settings (WAL, foreign keys, busy timeout).

    The pool sizes apply to PostgreSQL: 4 workers x 100 threads once exhausted its 100 connections.
    """
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        _configure_sqlite(engine)
        _writer_locks[engine] = SQLiteWriterLock(sqlite_file(engine))
    else:
        engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_pre_ping=True,
                               pool_timeout=30)
    return engine


def _configure_sqlite(engine: Engine) -> None:
    """Hand transaction control to SQLAlchemy so writers can take the lock up front.

    pysqlite's own implicit BEGIN is deferred; a deferred transaction that later writes can fail
    with "database is locked" without waiting. `write()` therefore begins IMMEDIATE.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: sqlite3.Connection, _record: ConnectionPoolEntry) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        # On the driver connection directly: it runs once per transaction, on the hot path of every call.
        driver = conn.connection.driver_connection
        assert driver is not None, "a connection that begins a transaction is open"
        driver.execute(f"BEGIN {mode}")


def get_engine(url: str | None = None, *, settings: Settings | None = None) -> Engine:
    """The process-wide engine for `url` (default: the settings' database), migrated on first use.

    `settings` (default: the process settings) size the PostgreSQL pool.
    """
    settings = settings or get_settings()
    url = url or settings.database_url
    key = (url, settings.db_pool_size, settings.db_max_overflow)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = create_db_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
            upgrade_schema(engine)
            _engines[key] = engine
        return engine


def engine_for(db_path: Engine | str | None = None, *, settings: Settings | None = None) -> Engine:
    """The engine for what a constructor was given: an Engine as is, a database URL, a SQLite file path (the
    original's `db_path`), or None for the settings' database; migrated on first use."""
    if isinstance(db_path, Engine):
        return db_path
    if db_path is None or "://" in db_path:
        return get_engine(db_path, settings=settings)
    return get_engine(sqlite_url(db_path), settings=settings)


def sqlite_url(path: str) -> str:
    """The URL of a SQLite file, absolute so one file is one engine whatever the working directory."""
    return f"sqlite:///{os.path.abspath(path)}"


def init_database(db_path: Engine | str = "ai_models.db") -> Engine:
    """The original's set-up call: create or migrate the database (a SQLite path by default); returns its engine."""
    return engine_for(db_path)


def get_connection(db_path: str = "ai_models.db") -> sqlite3.Connection:
    """The original's raw connection to a SQLite file, rows readable by column name, for ad-hoc queries."""
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    return conn


def reset_after_fork() -> None:
    """In a forked worker: drop the parent's pooled connections (unclosed: the parent owns them)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose(close=False)


@contextmanager
def read(engine: Engine) -> Iterator[Connection]:
    """A short read-only unit of work."""
    with engine.connect() as conn:
        yield conn


@contextmanager
def write(engine: Engine) -> Iterator[Connection]:
    """A write transaction; on SQLite it queues for the writer lock, then takes SQLite's at BEGIN."""
    writer_lock = _writer_locks.get(engine)
    with writer_lock.held() if writer_lock else nullcontext(), engine.connect() as conn:
        if is_sqlite(conn):
            conn = conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


def inserted_id(result: CursorResult[Any]) -> int:
    """The surrogate key of the row a single-row INSERT just wrote."""
    key = result.inserted_primary_key
    if key is None:
        raise RuntimeError("the statement inserted no row")
    return int(key[0])


def _alembic_config(conn: Connection | None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    return config


def pending_migrations(engine: Engine) -> bool:
    with read(engine) as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    script = ScriptDirectory.from_config(_alembic_config(None))
    return current != set(script.get_heads())


def upgrade_schema(engine: Engine) -> None:
    """Apply pending migrations atomically; concurrent starters serialize on a database lock."""
    if not pending_migrations(engine):
        return
    with write(engine) as conn:
        if not is_sqlite(conn):
            conn.execute(text("SELECT pg_advisory_xact_lock(7263514)"))
        command.upgrade(_alembic_config(conn), "heads")


def current_revisions(engine: Engine) -> set[str]:
    with read(engine) as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def ping(engine: Engine) -> bool:
    """True when the database answers a trivial query."""
    try:
        with read(engine) as conn:
            conn.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure means "not reachable"
        return False
