"""Secrets the service makes for itself, kept in the database so every worker and host shares them: the key that
signs the dashboard's session cookies, unless SECRET_KEY sets one."""

from __future__ import annotations

import secrets

from sqlalchemy import Column, Engine, String, Table, select

from storage.database import metadata, read, upsert_into, write

app_secrets = Table(
    "app_secrets",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", String(200), nullable=False),
)


def shared_secret(engine: Engine, name: str) -> str:
    """The secret called `name`, made (256 random bits) by whichever process asks first."""
    with read(engine) as conn:
        value = conn.execute(select(app_secrets.c.value).where(app_secrets.c.name == name)).scalar()
    if value is not None:
        return str(value)
    with write(engine) as conn:
        conn.execute(upsert_into(conn, app_secrets).values(name=name, value=secrets.token_hex(32))
                     .on_conflict_do_nothing(index_elements=["name"]))
        return str(conn.execute(select(app_secrets.c.value).where(app_secrets.c.name == name)).scalar_one())
