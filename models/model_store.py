"""Persisted registry entries, so a model keeps one id across restarts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column, DateTime, Engine, Integer, String, Table, select

from models.errors import UnknownModelError
from storage.clock import utcnow
from storage.database import metadata, read, upsert_into, write

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
        """Insert or refresh the entry for `name` and return its stable id; processes starting together on one
        database race to insert it, and one INSERT ... ON CONFLICT lets every one of them win."""
        now = utcnow()
        values = {"provider": provider, "updated_at": now, **details}
        with write(self.engine) as conn:
            statement = upsert_into(conn, registered_models).values(name=name, created_at=now, **values)
            statement = statement.on_conflict_do_update(index_elements=["name"], set_=values)
            return int(conn.execute(statement.returning(registered_models.c.id)).scalar_one())

    def get_id(self, name: str) -> int | None:
        """The id registered under `name`, or None."""
        with read(self.engine) as conn:
            found = conn.execute(select(registered_models.c.id).where(registered_models.c.name == name)).scalar()
        return None if found is None else int(found)

    def name_for(self, model: int | str) -> str:
        """The model a caller named by the original's id (what `register_model` returned) or by name.

        Raises UnknownModelError for an id that was never registered: a row must name a real model.
        """
        if isinstance(model, str):
            return model
        with read(self.engine) as conn:
            name = conn.execute(select(registered_models.c.name).where(registered_models.c.id == model)).scalar()
        if name is None:
            raise UnknownModelError(f"No model is registered with id {model!r}", details={"model_id": model})
        return str(name)

    def list(self) -> list[dict[str, Any]]:
        with read(self.engine) as conn:
            return [dict(row) for row in conn.execute(select(registered_models)).mappings()]
