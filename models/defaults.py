"""Which models a fresh registry holds: the local model always, Gemini's when a key is configured,
then the models declared in MODELS_FILE (which may replace a built-in of the same name)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.model_registry import ModelRegistry


def register_default_models(registry: ModelRegistry) -> None:
    from models.local_model import LocalModel

    settings = registry.settings
    registry.register_model(LocalModel.from_settings(settings), aliases=("local",))
    if settings.has_gemini_key:
        from models.gemini_model import GeminiModel

        for name in registry.pricing.names(prefix="gemini-"):
            registry.register_model(GeminiModel.from_settings(name, settings))
    if settings.models_file:
        from models.models_file import register_file_models

        register_file_models(registry, settings)
