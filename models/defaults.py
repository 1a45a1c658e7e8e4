"""What a model or registry built without arguments gets: the composition root's wiring for the process
settings (hooks such as the budget guard included), and the models a fresh registry holds."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.settings import Settings, get_settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from models.call_path import CallPath
    from models.model_registry import ModelRegistry
    from models.pricing import ModelPricing


def managed_call_path(settings: Settings | None = None, engine: Engine | None = None) -> CallPath:
    """The call path the composition root wires for `settings` (default: the process settings)."""
    from wiring.runtime import runtime_for  # the one upward import: the root knows every layer

    return runtime_for(settings or get_settings(), engine).call_path()


def default_pricing(model_name: str) -> ModelPricing | None:
    """The process settings' price for a model created without one."""
    from models.pricing import PricingTable

    return PricingTable.for_settings(get_settings()).get(model_name)


def register_default_models(registry: ModelRegistry) -> None:
    """The local model always, the local sentence-embedding model when its optional packages are installed,
    Gemini's (chat and embedding models) and Anthropic's (the pricing table's `claude-*`) when their key is
    configured, then the models of MODELS_FILE (which may replace a built-in of the same name)."""
    from models import sentence_embeddings
    from models.local_model import LocalModel

    settings = registry.settings
    registry.register_model(LocalModel.from_settings(settings, registry.pricing), aliases=("local",))
    if sentence_embeddings.is_installed():
        registry.register_model(sentence_embeddings.SentenceEmbeddingModel())
    if settings.has_gemini_key:
        from models.gemini_embeddings import GeminiEmbeddingModel, is_embedding_model
        from models.gemini_model import GeminiModel

        for name in registry.pricing.names(prefix="gemini-"):
            model_class = GeminiEmbeddingModel if is_embedding_model(name) else GeminiModel
            registry.register_model(model_class.from_settings(name, settings, registry.pricing))
    if settings.has_anthropic_key:
        from models.anthropic_model import AnthropicModel

        for name in registry.pricing.names(prefix="claude-"):
            registry.register_model(AnthropicModel.from_settings(name, settings, registry.pricing))
    if settings.models_file:
        from models.models_file import register_file_models

        register_file_models(registry, settings)
