"""`flask db ...` commands for operators."""

from __future__ import annotations

import click
from flask import Flask

from api.wiring import services
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
