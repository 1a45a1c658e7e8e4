"""Managed API keys. Only a SHA-256 hash of each key is stored; the key itself is shown once at creation."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, DateTime, Engine, String, Table, select, update

from storage.clock import utcnow
from storage.database import metadata, read, write

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("revoked_at", DateTime),
)

_PUBLIC_COLUMNS = (api_keys.c.id, api_keys.c.name, api_keys.c.prefix, api_keys.c.created_at, api_keys.c.revoked_at)


class ApiKeyStore:
    """Creates, finds, lists and revokes key records by hash."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, key_id: str, name: str, key_hash: str, prefix: str) -> None:
        with write(self.engine) as conn:
            conn.execute(api_keys.insert(), {"id": key_id, "name": name, "key_hash": key_hash, "prefix": prefix,
                                              "created_at": utcnow()})

    def active_id_for(self, key_hash: str) -> str | None:
        """The id of the unrevoked key with this hash, if any."""
        query = select(api_keys.c.id).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        with read(self.engine) as conn:
            return conn.execute(query).scalar()

    def any_active(self) -> bool:
        query = select(api_keys.c.id).where(api_keys.c.revoked_at.is_(None)).limit(1)
        with read(self.engine) as conn:
            return conn.execute(query).first() is not None

    def revoke(self, key_id: str) -> bool:
        with write(self.engine) as conn:
            result = conn.execute(
                update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return result.rowcount > 0

    def list(self) -> list[dict[str, Any]]:
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(select(*_PUBLIC_COLUMNS).order_by(api_keys.c.created_at))
                    .mappings()]
