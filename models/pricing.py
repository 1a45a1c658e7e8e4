"""The pricing table: data, not code. Prices are USD per million tokens, with their source and date."""

from __future__ import annotations

import functools
import json
import logging
import threading
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core.settings import Settings

log = logging.getLogger(__name__)
BUILTIN_PRICING_FILE = Path(__file__).resolve().parent / "pricing.json"


class PriceTier(BaseModel):
    """Prices of one tier; an unset cache read or cache write price is the input price."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    cached_input_per_million: float | None = Field(default=None, ge=0)  # prompt-cache reads
    cache_write_per_million: float | None = Field(default=None, ge=0)  # prompt-cache writes (Anthropic bills them)


class LongContextTier(PriceTier):
    threshold_tokens: int = Field(gt=0)


class ModelPricing(PriceTier):
    """A model's prices; `long_context` applies when the prompt exceeds its threshold."""

    long_context: LongContextTier | None = None
    source: str | None = None
    as_of: str | None = None

    def tier_for(self, input_tokens: int) -> PriceTier:
        if self.long_context and input_tokens > self.long_context.threshold_tokens:
            return self.long_context
        return self

    def cost(self, input_tokens: int, output_tokens: int, cached_tokens: int = 0, cache_write_tokens: int = 0) -> float:
        """((input - cached - written) x input + cached x cached-input + written x cache-write + output x output) / 1e6.

        Cached (cache-read) and cache-write tokens are parts of the input count, which also picks the tier;
        thinking tokens are part of the output count.
        """
        tier = self.tier_for(input_tokens)
        uncached = max(input_tokens - cached_tokens - cache_write_tokens, 0)
        return (
            uncached * tier.input_per_million
            + cached_tokens * _or_input(tier.cached_input_per_million, tier)
            + cache_write_tokens * _or_input(tier.cache_write_per_million, tier)
            + output_tokens * tier.output_per_million
        ) / 1_000_000

    def summary(self) -> dict[str, Any]:
        """The base tier's prices; the cache-write price only for models that have one."""
        prices = {
            "input_per_million": self.input_per_million,
            "output_per_million": self.output_per_million,
            "cached_input_per_million": self.cached_input_per_million,
        }
        if self.cache_write_per_million is not None:
            prices["cache_write_per_million"] = self.cache_write_per_million
        return prices


def _or_input(price: float | None, tier: PriceTier) -> float:
    """A cache price, or the tier's input price when it has none."""
    return tier.input_per_million if price is None else price


class PricingTable:
    """Built-in prices overlaid by the user's `PRICING_FILE`; warns once per unpriced model."""

    def __init__(self, prices: dict[str, ModelPricing]) -> None:
        self._prices = dict(prices)
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, settings: Settings | None = None) -> PricingTable:
        prices = _read(BUILTIN_PRICING_FILE)
        if settings and settings.pricing_file:
            prices.update(_read(Path(settings.pricing_file)))
        return cls(prices)

    @classmethod
    def for_settings(cls, settings: Settings) -> PricingTable:
        """The table of these settings, loaded once per PRICING_FILE (the only setting it depends on)."""
        return _table_for(settings)

    def get(self, model_name: str) -> ModelPricing | None:
        pricing = self._prices.get(model_name)
        if pricing is None:
            with self._lock:
                if model_name not in self._warned:
                    self._warned.add(model_name)
                    log.warning("No price known for model %r: its cost is recorded as null", model_name)
        return pricing

    def set(self, model_name: str, pricing: ModelPricing) -> None:
        self._prices[model_name] = pricing

    def names(self, prefix: str = "") -> list[str]:
        return sorted(name for name in self._prices if name.startswith(prefix))


@functools.lru_cache(maxsize=16)
def _cached_table(pricing_file: str | None) -> PricingTable:
    return PricingTable.load(Settings(pricing_file=pricing_file))


def _table_for(settings: Settings) -> PricingTable:
    return _cached_table(settings.pricing_file)


def _read(path: Path) -> dict[str, ModelPricing]:
    try:
        data = json.loads(path.read_text())
        return {name: ModelPricing(**entry) for name, entry in data["models"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"Invalid pricing file {path}: {exc}") from exc
