"""Managed API keys. Only a SHA-256 hash of each key is stored; the key itself is shown once at creation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, Column, DateTime, Engine, String, Table, bindparam, false, select, update

from storage.clock import utcnow
from storage.database import metadata, read, write
from storage.ttl_cache import TtlCache

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
    Column("admin", Boolean, nullable=False, server_default=false()),  # sees and changes every tenant's data
)

# Built once: constructing a SQLAlchemy query costs more than running it against the cache.
_ACTIVE_FOR = select(api_keys.c.id, api_keys.c.admin).where(api_keys.c.key_hash == bindparam("key_hash"),
                                                           api_keys.c.revoked_at.is_(None))
_ANY_ACTIVE = select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)
_PUBLIC_COLUMNS = (api_keys.c.id, api_keys.c.name, api_keys.c.prefix, api_keys.c.admin, api_keys.c.created_at,
                   api_keys.c.revoked_at)


@dataclass(frozen=True)
class KeyIdentity:
    """Who a presented key is: its id, and whether it may see and change every tenant's data."""

    id: str
    admin: bool = False


class ApiKeyStore:
    """Creates, finds, lists and revokes key records by hash.

    The two lookups every `/api/` request makes are cached for `cache_seconds`: this process's own
    changes apply at once, another process's (a key created or revoked there) within that time.
    """

    def __init__(self, engine: Engine, *, cache_seconds: float = 1.0) -> None:
        self.engine = engine
        self._ids: TtlCache[KeyIdentity | None] = TtlCache(cache_seconds)
        self._any: TtlCache[bool] = TtlCache(cache_seconds)

    def add(self, key_id: str, name: str, key_hash: str, prefix: str, *, admin: bool = False) -> None:
        with write(self.engine) as conn:
            conn.execute(api_keys.insert(), {"id": key_id, "name": name, "key_hash": key_hash, "prefix": prefix,
                                              "admin": admin, "created_at": utcnow()})
        self._clear_caches()

    def active_for(self, key_hash: str) -> KeyIdentity | None:
        """The unrevoked key with this hash, if any."""
        return self._ids.get(key_hash, lambda: self._identity(key_hash))

    def _identity(self, key_hash: str) -> KeyIdentity | None:
        with read(self.engine) as conn:
            row = conn.execute(_ACTIVE_FOR, {"key_hash": key_hash}).first()
        return KeyIdentity(row.id, bool(row.admin)) if row else None

    def any_active(self) -> bool:
        return self._any.get("any_active", lambda: self._first(_ANY_ACTIVE) is not None)

    def _clear_caches(self) -> None:
        self._ids.clear()
        self._any.clear()

    def _first(self, query: Any, **params: Any) -> Any:
        with read(self.engine) as conn:
            return conn.execute(query, params).scalar()

    def revoke(self, key_id: str) -> bool:
        with write(self.engine) as conn:
            result = conn.execute(
                update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
        self._clear_caches()
        return result.rowcount > 0

    def list(self) -> list[dict[str, Any]]:
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(select(*_PUBLIC_COLUMNS).order_by(api_keys.c.created_at))
                    .mappings()]
