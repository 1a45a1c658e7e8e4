"""The pricing table: the cost formula, long-context tiers, unknown models and user overrides."""

from __future__ import annotations

import json
import logging

import pytest

from core.settings import Settings
from models.pricing import BUILTIN_PRICING_FILE, ModelPricing, PricingTable

REQUIRED = ("gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash",
            "gemini-2.0-flash-exp", "smollm2-135m-instruct")


def settings_with(pricing_file=None) -> Settings:
    overrides = {"PRICING_FILE": str(pricing_file)} if pricing_file else {}
    return Settings.from_env(environ={}, env_file=None, overrides=overrides)


def test_builtin_table_covers_the_required_models_with_source_and_date():
    table = PricingTable.load(settings_with())
    for name in REQUIRED:
        pricing = table.get(name)
        assert pricing is not None, name
        assert pricing.source and pricing.as_of, name
        assert pricing.cached_input_per_million is not None, name
    assert table.get("smollm2-135m-instruct").cost(10_000, 10_000) == 0.0


@pytest.mark.parametrize(("name", "prices"), [
    ("gemini-2.5-pro", (1.25, 10.0, 0.125)),
    ("gemini-2.5-flash", (0.30, 2.50, 0.03)),
    ("gemini-2.5-flash-lite", (0.10, 0.40, 0.01)),
    ("gemini-2.0-flash", (0.10, 0.40, 0.025)),
])
def test_builtin_prices(name, prices):
    p = PricingTable.load(settings_with()).get(name)
    assert (p.input_per_million, p.output_per_million, p.cached_input_per_million) == prices


def test_cost_formula_with_cached_and_thinking_tokens():
    # Gemini: 1000 prompt tokens of which 600 cached; 50 candidates + 200 thoughts -> output 250.
    flash = PricingTable.load(settings_with()).get("gemini-2.5-flash")
    assert flash.cost(1000, 250, 600) == pytest.approx((400 * 0.30 + 600 * 0.03 + 250 * 2.50) / 1e6, rel=1e-12)


def test_cached_price_defaults_to_the_input_price():
    p = ModelPricing(input_per_million=2.0, output_per_million=4.0)
    assert p.cost(100, 10, cached_tokens=40) == pytest.approx((100 * 2.0 + 10 * 4.0) / 1e6)


def test_long_context_tier_applies_above_the_threshold():
    pro = PricingTable.load(settings_with()).get("gemini-2.5-pro")
    assert pro.long_context.threshold_tokens == 200_000
    at_threshold = pro.cost(200_000, 1000, 50_000)
    assert at_threshold == pytest.approx((150_000 * 1.25 + 50_000 * 0.125 + 1000 * 10.0) / 1e6, rel=1e-12)
    above = pro.cost(200_001, 1000, 50_000)
    assert above == pytest.approx((150_001 * 2.50 + 50_000 * 0.25 + 1000 * 15.0) / 1e6, rel=1e-12)


def test_unknown_model_has_no_price_and_warns_once(caplog):
    table = PricingTable.load(settings_with())
    with caplog.at_level(logging.WARNING, logger="models.pricing"):
        assert table.get("mystery-model") is None
        assert table.get("mystery-model") is None
    warnings = [r for r in caplog.records if "mystery-model" in r.getMessage()]
    assert len(warnings) == 1 and "null" in warnings[0].getMessage()


def test_unpriced_model_records_cost_null_not_zero(tmp_path):
    from models.model_registry import ModelRegistry
    from storage.database import create_db_engine, upgrade_schema
    from tests.fakes import FakeModel

    engine = create_db_engine(f"sqlite:///{tmp_path / 'p.db'}")
    upgrade_schema(engine)
    registry = ModelRegistry(engine, settings=settings_with(), pricing=PricingTable({}), register_defaults=False)
    model = FakeModel("unpriced", pricing=None)
    registry.register_model(model)
    result = model.generate("a b c")
    assert result["input_tokens"] == 3 and result["cost"] is None
    assert registry.call_path.request_log.get(result["request_id"])["cost"] is None
    engine.dispose()


def test_pricing_file_overrides_and_adds(tmp_path):
    user_file = tmp_path / "prices.json"
    user_file.write_text(json.dumps({"models": {
        "gemini-2.5-flash": {"input_per_million": 1.0, "output_per_million": 2.0, "cached_input_per_million": 0.5,
                             "source": "negotiated contract", "as_of": "2026-11-01"},
        "my-model": {"input_per_million": 3.0, "output_per_million": 6.0, "source": "internal", "as_of": "2026-11-20"},
    }}))
    table = PricingTable.load(settings_with(user_file))
    flash = table.get("gemini-2.5-flash")
    assert (flash.input_per_million, flash.source) == (1.0, "negotiated contract")
    assert table.get("my-model").cost(1_000_000, 1_000_000) == pytest.approx(9.0)
    assert table.get("gemini-2.5-pro").input_per_million == 1.25  # untouched entries keep the built-in price
    assert "my-model" in table.names() and "my-model" not in table.names(prefix="gemini-")


def test_pricing_file_reaches_gemini_models_built_from_settings(tmp_path):
    from models.gemini_model import GeminiModel

    user_file = tmp_path / "prices.json"
    user_file.write_text(json.dumps({"models": {"gemini-2.5-flash": {
        "input_per_million": 7.0, "output_per_million": 8.0, "source": "test", "as_of": "2026-11-22"}}}))
    settings = Settings.from_env(environ={}, env_file=None, overrides={
        "PRICING_FILE": str(user_file), "GEMINI_API_KEY": "k", "GEMINI_BASE_URL": "http://127.0.0.1:9"})
    assert GeminiModel.from_settings("gemini-2.5-flash", settings).pricing.input_per_million == 7.0


def test_invalid_pricing_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": {"x": {"input_per_million": -1, "output_per_million": 1}}}))
    with pytest.raises(ValueError, match="Invalid pricing file"):
        PricingTable.load(settings_with(bad))


def test_builtin_file_is_valid_json_with_a_comment():
    data = json.loads(BUILTIN_PRICING_FILE.read_text())
    assert "USD per 1M tokens" in data["_comment"]
