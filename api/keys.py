"""Key management over HTTP, for admin keys only: create (the key is shown once), list, read and revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Response, g, jsonify
from pydantic import BaseModel, Field

from api.auth import create_key
from api.errors import ApiError
from api.key_spec import KeySpec
from api.key_store import key_status
from api.openapi import ApiBlueprint, json_object
from api.services import api_keys, canonical_model
from core.errors import NotFoundError
from storage.clock import utcnow

bp = ApiBlueprint("keys", __name__, url_prefix="/api")

KEY = json_object("The key's record: id, name, prefix, admin, models, expires_at, rpm, tpm, metadata, status, ...")


class KeyPath(BaseModel):
    key_id: str = Field(min_length=1, max_length=40)


class KeyNotFoundError(NotFoundError):
    code = "api_key_not_found"


@bp.before_request
def _admins_only() -> None:
    """Keys are managed with an admin key; with none configured the service is open, so the first comes from
    the CLI or `API_KEYS` (otherwise whoever reached the service first could lock everyone else out)."""
    if g.get("api_key_id") is None:
        raise ApiError(403, "forbidden", "Keys are managed with an admin key, and none is configured: create the "
                                         "first with `flask --app api.app keys create NAME --admin` or set API_KEYS")
    if not g.get("api_key_admin"):
        raise ApiError(403, "forbidden", "Only an admin key may manage API keys")


@bp.post("/keys", responses={201: json_object("The key's record with `key`, the key itself, shown only here")})
def create(body: KeySpec) -> tuple[Response, int]:
    """Create a key; the answer holds the key itself, which is stored only as a hash and never shown again."""
    store = api_keys()
    key_id, key = create_key(store, body.name, admin=body.admin, policy=body.policy(canonical_model))
    return jsonify({"id": key_id, "key": key, **_public(_record(key_id))}), 201


@bp.get("/keys", responses={200: json_object("Every key, revoked and expired ones too, never a key or a hash")})
def list_keys() -> Response:
    """Every key, oldest first."""
    now = utcnow()
    keys = [_public(row, now) for row in api_keys().list()]
    return jsonify({"keys": keys, "count": len(keys)})


@bp.get("/keys/<key_id>", responses={200: KEY})
def get_key(path: KeyPath) -> Response:
    """One key."""
    return jsonify(_public(_record(path.key_id)))


@bp.delete("/keys/<key_id>", responses={200: KEY})
def revoke(path: KeyPath) -> Response:
    """Revoke a key: requests with it get 401 `invalid_api_key` (within a second on every worker)."""
    store = api_keys()
    _record(path.key_id)
    store.revoke(path.key_id)
    return jsonify(_public(_record(path.key_id)))


def _record(key_id: str) -> dict[str, Any]:
    row = api_keys().get(key_id)
    if row is None:
        raise KeyNotFoundError(f"No API key with id {key_id!r}", details={"id": key_id})
    return row


def _public(row: dict[str, Any], now: datetime | None = None) -> dict[str, Any]:
    status = key_status(row, now or utcnow())
    return {**{k: (v.isoformat() + "Z" if isinstance(v, datetime) else v) for k, v in row.items()}, "status": status}
