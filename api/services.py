"""The services of the app handling the current request, built by the composition root (`wiring`)."""

from __future__ import annotations

from flask import Flask, current_app

from api.key_store import ApiKeyStore
from models.errors import UnknownModelError
from wiring import Services

EXTENSION_KEY = "ai_model_manager"
KEYS_EXTENSION_KEY = "ai_model_manager.api_keys"


def services(app: Flask | None = None) -> Services:
    """The services of `app`, by default the app handling the current request."""
    return (app or current_app).extensions[EXTENSION_KEY]


def api_keys(app: Flask | None = None) -> ApiKeyStore:
    """The managed API keys of `app` (they belong to the HTTP layer, so they are not among the services)."""
    return (app or current_app).extensions[KEYS_EXTENSION_KEY]


def canonical_model(name: str) -> str:
    """What a budget or an allow-list naming an alias means: the model it names; unknown names are kept (a
    model registered later)."""
    try:
        return services().registry.resolve(name)
    except UnknownModelError:
        return name
