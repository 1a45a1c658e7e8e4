"""`flask db ...` and `flask keys ...` commands for operators."""

from __future__ import annotations

import json
from typing import Any

import click
from flask import Flask
from pydantic import ValidationError

from api.auth import create_key
from api.key_spec import KeySpec
from api.key_store import key_status
from api.services import api_keys, canonical_model, services
from core.errors import validation_fields
from storage.clock import utcnow
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
    @click.option("--admin", is_flag=True, help="May manage keys and see and change every tenant's data.")
    @click.option("--model", "models", multiple=True, help="A model it may call (repeat it); default: all.")
    @click.option("--expires-at", help="ISO 8601 date and time, e.g. 2030-01-01T00:00:00Z (UTC without offset).")
    @click.option("--rpm", type=int, help="Calls per clock minute; default: unlimited.")
    @click.option("--tpm", type=int, help="Tokens per clock minute; default: unlimited.")
    @click.option("--metadata", help='A JSON object; its "tags" are recorded with every call made with the key.')
    def create(name: str, admin: bool, models: tuple[str, ...], expires_at: str | None, rpm: int | None,
               tpm: int | None, metadata: str | None) -> None:
        """Create a key; it is printed once and cannot be shown again."""
        spec = _key_spec({"name": name, "admin": admin, "models": list(models) or None, "expires_at": expires_at,
                          "rpm": rpm, "tpm": tpm, "metadata": _json_option("--metadata", metadata)})
        key_id, key = create_key(api_keys(), spec.name, admin=spec.admin, policy=spec.policy(canonical_model))
        label = f"{name}, admin" if admin else name
        click.echo(f"Created {key_id} ({label}). Store this key now, it will not be shown again:\n{key}")

    @keys.command("list")
    def list_keys() -> None:
        """List keys (ids, names, prefixes, state and limits; never the keys)."""
        now = utcnow()
        for row in api_keys().list():
            state = key_status(row, now)
            if row["revoked_at"]:
                state += f" {row['revoked_at']:%Y-%m-%d}"
            elif row["expires_at"]:
                state += f" (expires {row['expires_at']:%Y-%m-%d %H:%M}Z)"
            limits = [f"{name}={row[name]}" for name in ("rpm", "tpm") if row[name] is not None]
            limits += [f"models={','.join(row['models'])}"] if row["models"] is not None else []
            click.echo("  ".join([row["id"], f"{row['prefix']}...", row["name"], state,
                                  *(["admin"] if row["admin"] else []), *limits]))

    @keys.command("revoke")
    @click.argument("key_id")
    def revoke(key_id: str) -> None:
        """Revoke a key by id; requests using it get 401 from then on."""
        if not api_keys().revoke(key_id):
            raise click.ClickException(f"No active key with id {key_id}")
        click.echo(f"Revoked {key_id}")


def _key_spec(values: dict[str, Any]) -> KeySpec:
    """The options checked by the HTTP API's rules; a mistake names the option."""
    try:
        return KeySpec.model_validate(values)
    except ValidationError as exc:
        raise click.ClickException("; ".join(f"--{f['field'].replace('_', '-')}: {f['reason']}"
                                             for f in validation_fields(exc))) from None


def _json_option(option: str, value: str | None) -> Any:
    try:
        return json.loads(value) if value is not None else None
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{option}: not JSON ({exc})") from None
