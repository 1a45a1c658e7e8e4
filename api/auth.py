"""API-key authentication for `/api/` and `/v1/`: bootstrap keys from `API_KEYS`, managed keys stored hashed.

Once any key was made, every request there needs one (`Authorization: Bearer <key>` or `X-API-Key`); an expired
key is refused with its own code. While none was ever made the service is open and ignores whatever key a
client sends (SDKs always send one). The request keeps only the key's id (`g.api_key_id`), never the key.
Bootstrap keys and keys created as admin see every tenant's data; any other managed key is a tenant that sees
only its own (`api.tenancy`).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from datetime import datetime

from flask import Flask, g, request

from api.errors import ApiError
from api.key_store import ApiKeyStore, KeyIdentity, KeyPolicy
from core.settings import Settings
from storage.clock import utcnow

KEY_PREFIX = "amm_"


def hash_key(key: str) -> str:
    """Keys are 256-bit random tokens, so a plain SHA-256 is a safe and fast lookup hash."""
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: ApiKeyStore, name: str, *, admin: bool = False,
               policy: KeyPolicy | None = None) -> tuple[str, str]:
    """Create a managed key; returns (id, key). The key is not stored and cannot be shown again."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = "key_" + secrets.token_hex(6)
    store.add(key_id, name, hash_key(key), key[: len(KEY_PREFIX) + 4], admin=admin, policy=policy)
    return key_id, key


class Authenticator:
    """Resolves the presented key to an id, or refuses the request with a JSON 401."""

    def __init__(self, settings: Settings, store: ApiKeyStore, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.store = store
        self.clock = clock
        self.metrics_require_key = settings.metrics_require_key
        raw = settings.api_keys.get_secret_value() if settings.api_keys else ""
        self._bootstrap = {hash_key(k.strip()): KeyIdentity("env_" + hash_key(k.strip())[:12], admin=True)
                           for k in raw.split(",") if k.strip()}

    def protects(self, path: str) -> bool:
        return path.startswith(("/api/", "/v1/")) or (path == "/metrics" and self.metrics_require_key)

    def check(self) -> None:
        if not self.protects(request.path):
            return
        presented = _presented_key()
        identity = self.identify(presented) if presented is not None else None
        if identity is None:
            if not self.keys_required():
                return
            if presented is None:
                raise ApiError(401, "unauthorized", "An API key is required: send 'Authorization: Bearer <key>' "
                                                    "or 'X-API-Key: <key>'")
            raise ApiError(401, "invalid_api_key", "The API key is not valid or has been revoked")
        if identity.policy.expired(self.clock()):
            expired_at = f"{identity.policy.expires_at:%Y-%m-%dT%H:%M:%S}Z"
            raise ApiError(401, "api_key_expired", f"The API key expired at {expired_at}", expired_at=expired_at)
        g.api_key_id = identity.id
        g.api_key_admin = identity.admin
        g.api_key_tags = identity.policy.tags


    def identify(self, presented: str) -> KeyIdentity | None:
        """The active key `presented` is (bootstrap or managed), if any."""
        digest = hash_key(presented)
        return self._bootstrap.get(digest) or self.store.active_for(digest)

    def keys_required(self) -> bool:
        """Whether any key exists: until one does, the service is open."""
        return bool(self._bootstrap) or self.store.any_exists()


def _presented_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.headers.get("X-API-Key", "").strip() or None


AUTHENTICATOR_KEY = "ai_model_manager.authenticator"


def register_auth(app: Flask, authenticator: Authenticator) -> None:
    app.extensions[AUTHENTICATOR_KEY] = authenticator  # the dashboard signs in with the same keys
    app.before_request(authenticator.check)
