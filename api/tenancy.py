"""Tenants: a managed API key sees and changes only what it owns; admin keys (and a service with no keys) see all."""

from __future__ import annotations

from flask import g, request

from api.errors import ApiError
from api.openapi import MAX_ROW_ID


def tenant() -> str | None:
    """The key id whose data this request is limited to; None when it may see every tenant's."""
    if g.get("api_key_admin", True):
        return None
    return g.get("api_key_id")


def require_admin(action: str) -> None:
    """Refuse (403) a managed non-admin key the `action` on what every tenant shares; open without keys."""
    if tenant() is not None:
        raise ApiError(403, "forbidden", f"Only an admin key may {action}")


def caller_key() -> str | None:
    """The key the request came with (recorded as the owner of what it creates), admin or not."""
    return g.get("api_key_id")


def path_row_id(name: str) -> int | None:
    """The request's `<int:name>` path value when it is a valid row id (else the view's validation answers)."""
    value = (request.view_args or {}).get(name)
    return value if isinstance(value, int) and 1 <= value <= MAX_ROW_ID else None
