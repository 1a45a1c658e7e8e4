"""The registry: names and aliases, persistent ids, helpful unknown-model errors, the default model."""

import pytest

from core.settings import Settings
from models import sentence_embeddings
from models.model_registry import ModelRegistry, UnknownModelError
from storage.database import get_engine
from tests.fakes import FakeModel


def _registry(tmp_path, **env):
    settings = Settings.from_env(environ={}, env_file=None,
                                 overrides={"DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}", **env})
    return ModelRegistry(get_engine(settings.database_url), settings=settings)


def test_register_by_name_and_alias_with_persistent_id(tmp_path):
    registry = _registry(tmp_path)
    model_id = registry.register_model(FakeModel("m1"), aliases=("first",))
    assert registry.get_model("first") is registry.get_model("m1")
    assert "m1" in registry.list_models()
    assert _registry(tmp_path).register_model(FakeModel("m1")) == model_id


def test_unknown_model_is_a_key_error_listing_the_names(tmp_path):
    registry = _registry(tmp_path)
    with pytest.raises(KeyError) as caught:
        registry.require_model("nope")
    assert isinstance(caught.value, UnknownModelError) and isinstance(caught.value, ValueError)
    assert "smollm2-135m-instruct" in str(caught.value)
    assert registry.get_model("nope") is None  # the original's answer for a name nobody registered


def test_defaults_without_key_are_the_local_model(tmp_path):
    registry = _registry(tmp_path)
    optional = ["all-minilm-l6-v2"] if sentence_embeddings.is_installed() else []  # requirements-embeddings.txt
    assert registry.list_models() == [*optional, "smollm2-135m-instruct"]
    assert registry.default_model_name == "smollm2-135m-instruct"
    assert registry.get_model("local").provider == "local"
    assert registry.get_model().calculate_cost(1000, 1000) == 0.0


def test_default_model_setting_wins(tmp_path):
    registry = _registry(tmp_path, DEFAULT_MODEL="fake-model")
    registry.register_model(FakeModel())
    assert registry.get_model().name == "fake-model"
