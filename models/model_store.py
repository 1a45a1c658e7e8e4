"""Persisted registry entries, so a model keeps one id across restarts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, DateTime, Engine, Integer, String, Table, select, update

from storage.clock import utcnow
from storage.database import inserted_id, metadata, read, write

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("provider", String(50), nullable=False),
    Column("aliases", JSON),
    Column("capabilities", JSON),
    Column("pricing", JSON),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
)


class ModelStore:
    """Upserts and lists registry entries by name."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert(self, name: str, provider: str, **details: Any) -> int:
        """Insert or refresh the entry for `name` and return its stable id."""
        now = utcnow()
        values = {"provider": provider, "updated_at": now, **details}
        with write(self.engine) as conn:
            existing = conn.execute(
                select(registered_models.c.id).where(registered_models.c.name == name)
            ).scalar()
            if existing is not None:
                conn.execute(update(registered_models).where(registered_models.c.id == existing).values(**values))
                return int(existing)
            result = conn.execute(registered_models.insert().values(name=name, created_at=now, **values))
            return inserted_id(result)

    def list(self) -> list[dict[str, Any]]:
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(select(registered_models)).mappings()]
