"""`flask db ...` commands for operators."""

from __future__ import annotations

import click
from flask import Flask

from api.auth import create_key
from api.services import api_keys, services
from storage.database import current_revisions, upgrade_schema


def register_cli(app: Flask) -> None:
    @app.cli.group("db")
    def db() -> None:
        """Database schema commands."""

    @db.command("upgrade")
    def upgrade() -> None:
        """Apply pending migrations (they also run automatically at start-up)."""
        engine = services().engine
        upgrade_schema(engine)
        click.echo(f"Database at revision {', '.join(sorted(current_revisions(engine)))}")

    @db.command("current")
    def current() -> None:
        """Show the applied revision(s)."""
        click.echo(", ".join(sorted(current_revisions(services().engine))) or "(empty)")

    @app.cli.group("keys")
    def keys() -> None:
        """Managed API keys (stored hashed)."""

    @keys.command("create")
    @click.argument("name")
    @click.option("--admin", is_flag=True, help="May see and change every tenant's requests, budgets and runs.")
    def create(name: str, admin: bool) -> None:
        """Create a key; it is printed once and cannot be shown again."""
        key_id, key = create_key(api_keys(), name, admin=admin)
        label = f"{name}, admin" if admin else name
        click.echo(f"Created {key_id} ({label}). Store this key now, it will not be shown again:\n{key}")

    @keys.command("list")
    def list_keys() -> None:
        """List keys (ids, names, prefixes; never the keys)."""
        for row in api_keys().list():
            state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
            click.echo(f"{row['id']}  {row['prefix']}...  {row['name']}  {state}{'  admin' if row['admin'] else ''}")

    @keys.command("revoke")
    @click.argument("key_id")
    def revoke(key_id: str) -> None:
        """Revoke a key by id; requests using it get 401 from then on."""
        if not api_keys().revoke(key_id):
            raise click.ClickException(f"No active key with id {key_id}")
        click.echo(f"Revoked {key_id}")
