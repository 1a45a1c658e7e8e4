"""Managed API keys. Only a SHA-256 hash of each key is stored; the key itself is shown once at creation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Column, DateTime, Engine, Integer, String, Table, bindparam, false, select, update
from sqlalchemy.engine import Row

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
    Column("models", JSON(none_as_null=True)),  # the models it may call; NULL: all
    Column("expires_at", DateTime),  # refused at authentication from then on; NULL: never
    Column("rpm", Integer),  # calls per clock minute; NULL: unlimited
    Column("tpm", Integer),  # tokens per clock minute; NULL: unlimited
    Column("metadata", JSON(none_as_null=True)),  # the caller's own; `tags` are added to the key's calls
)

_IDENTITY_COLUMNS = (api_keys.c.id, api_keys.c.admin, api_keys.c.models, api_keys.c.expires_at, api_keys.c.rpm,
                     api_keys.c.tpm, api_keys.c["metadata"])
# Built once: constructing a SQLAlchemy query costs more than running it against the cache.
_ACTIVE_FOR = select(*_IDENTITY_COLUMNS).where(api_keys.c.key_hash == bindparam("key_hash"),
                                               api_keys.c.revoked_at.is_(None))
_BY_ID = select(*_IDENTITY_COLUMNS).where(api_keys.c.id == bindparam("key_id"))
_ANY_KEY = select(api_keys.c.id).limit(1)
_PUBLIC_COLUMNS = (api_keys.c.id, api_keys.c.name, api_keys.c.prefix, api_keys.c.admin, api_keys.c.models,
                   api_keys.c.expires_at, api_keys.c.rpm, api_keys.c.tpm, api_keys.c["metadata"],
                   api_keys.c.created_at, api_keys.c.revoked_at)


@dataclass(frozen=True)
class KeyPolicy:
    """What a key may do: the models it may call (None: all), until when, and how much per clock minute."""

    models: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    rpm: int | None = None
    tpm: int | None = None
    metadata: Mapping[str, Any] | None = None

    @property
    def tags(self) -> tuple[str, ...]:
        """`metadata.tags`: recorded with every call the key makes over the API."""
        return tuple((self.metadata or {}).get("tags") or ())

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now

    @property
    def limited(self) -> bool:
        return self.rpm is not None or self.tpm is not None

    def columns(self) -> dict[str, Any]:
        return {"models": list(self.models) if self.models is not None else None, "expires_at": self.expires_at,
                "rpm": self.rpm, "tpm": self.tpm, "metadata": dict(self.metadata) if self.metadata else None}


@dataclass(frozen=True)
class KeyIdentity:
    """Who a presented key is: its id, whether it may see and change every tenant's data, and its policy."""

    id: str
    admin: bool = False
    policy: KeyPolicy = field(default_factory=KeyPolicy)


class ApiKeyStore:
    """Creates, finds, lists and revokes key records by hash.

    The lookups every `/api/` request and every keyed call make are cached for `cache_seconds`: this
    process's own changes apply at once, another process's (a key created or revoked there) within that time.
    """

    def __init__(self, engine: Engine, *, cache_seconds: float = 1.0) -> None:
        self.engine = engine
        self._ids: TtlCache[KeyIdentity | None] = TtlCache(cache_seconds)
        self._by_id: TtlCache[KeyIdentity | None] = TtlCache(cache_seconds)
        self._any: TtlCache[bool] = TtlCache(cache_seconds)

    def add(self, key_id: str, name: str, key_hash: str, prefix: str, *, admin: bool = False,
            policy: KeyPolicy | None = None) -> None:
        with write(self.engine) as conn:
            conn.execute(api_keys.insert(), {"id": key_id, "name": name, "key_hash": key_hash, "prefix": prefix,
                                              "admin": admin, "created_at": utcnow(),
                                              **(policy or KeyPolicy()).columns()})
        self._clear_caches()

    def active_for(self, key_hash: str) -> KeyIdentity | None:
        """The unrevoked key with this hash, if any (expired or not: the caller tells the two apart)."""
        return self._ids.get(key_hash, lambda: self._identity(_ACTIVE_FOR, key_hash=key_hash))

    def identity(self, key_id: str) -> KeyIdentity | None:
        """The key with this id, revoked or not; None for an unknown id (or a bootstrap key's)."""
        return self._by_id.get(key_id, lambda: self._identity(_BY_ID, key_id=key_id))

    def _identity(self, query: Any, **params: str) -> KeyIdentity | None:
        with read(self.engine) as conn:
            row = conn.execute(query, params).first()
        return _identity(row) if row else None

    def any_exists(self) -> bool:
        """Whether any key was ever made; expired and revoked keys count, so neither reopens a closed service."""
        return self._any.get("any_exists", lambda: self._first(_ANY_KEY) is not None)

    def _clear_caches(self) -> None:
        self._ids.clear()
        self._by_id.clear()
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

    def get(self, key_id: str) -> dict[str, Any] | None:
        """One key's record (never its hash), revoked or not."""
        with read(self.engine) as conn:
            row = conn.execute(select(*_PUBLIC_COLUMNS).where(api_keys.c.id == key_id)).mappings().first()
        return dict(row) if row else None

    def list(self) -> list[dict[str, Any]]:
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(select(*_PUBLIC_COLUMNS).order_by(api_keys.c.created_at))
                    .mappings()]


def key_status(row: Mapping[str, Any], now: datetime) -> str:
    """`active`, `expired` or `revoked`, for listings."""
    if row["revoked_at"] is not None:
        return "revoked"
    return "expired" if KeyPolicy(expires_at=row["expires_at"]).expired(now) else "active"


def _identity(row: Row[Any]) -> KeyIdentity:
    models = row.models
    policy = KeyPolicy(models=tuple(models) if models is not None else None, expires_at=row.expires_at,
                       rpm=row.rpm, tpm=row.tpm, metadata=row._mapping["metadata"])
    return KeyIdentity(row.id, bool(row.admin), policy)
