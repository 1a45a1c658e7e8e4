"""Tenants: a managed API key sees and changes only what it owns; admin keys (and a service with no keys) see all."""

from __future__ import annotations

from flask import g


def tenant() -> str | None:
    """The key id whose data this request is limited to; None when it may see every tenant's."""
    if g.get("api_key_admin", True):
        return None
    return g.get("api_key_id")


def caller_key() -> str | None:
    """The key the request came with (recorded as the owner of what it creates), admin or not."""
    return g.get("api_key_id")
