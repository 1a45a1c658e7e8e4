"""The input of an embeddings call: the texts to embed and, optionally, how many dimensions to return.

The limits are declared once as annotated types, so the library's `BaseModel.embed` and an HTTP body model
(`/v1/embeddings`) refuse the same inputs with the same per-field reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictStr, ValidationError

from core.errors import InvalidInputError, validation_fields
from models.params import Integer

# OpenAI's own limit per request; providers with smaller batches (Gemini: 100) split it.
MAX_EMBEDDING_INPUTS = 2048
# Per text: past every embedding model's context (Gemini 2,048 tokens, OpenAI 8,192, the largest ~32k).
MAX_EMBEDDING_INPUT_CHARS = 200_000
# All texts together: the largest single message a chat call accepts.
MAX_EMBEDDING_TOTAL_CHARS = 10_000_000
# Four times the widest embedding served today (3,072-4,096 dimensions).
MAX_DIMENSIONS = 16_384


def _total_within_limit(texts: list[str]) -> list[str]:
    total = sum(map(len, texts))
    if total > MAX_EMBEDDING_TOTAL_CHARS:
        raise ValueError(f"the texts hold {total} characters, more than the {MAX_EMBEDDING_TOTAL_CHARS} allowed")
    return texts


EmbeddingText = Annotated[StrictStr, Field(min_length=1, max_length=MAX_EMBEDDING_INPUT_CHARS)]
EmbeddingTexts = Annotated[list[EmbeddingText], Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS),
                           AfterValidator(_total_within_limit)]
Dimensions = Annotated[Integer, Field(ge=1, le=MAX_DIMENSIONS)]


class _EmbeddingInput(BaseModel):
    """The library's arguments, validated with the shared types."""

    model_config = ConfigDict(extra="forbid")

    texts: EmbeddingTexts
    dimensions: Dimensions | None = None


@dataclass(frozen=True)
class EmbeddingRequest:
    """What a provider receives: the texts, in order (one vector each), and the dimensions asked for, if any."""

    texts: tuple[str, ...]
    dimensions: int | None = None

    @classmethod
    def build(cls, texts: str | Sequence[str], *, dimensions: int | None = None) -> EmbeddingRequest:
        """From one text or a list; invalid input raises `InvalidInputError` naming the field (`texts.3`)."""
        single = isinstance(texts, str)
        try:
            valid = _EmbeddingInput.model_validate({"texts": [texts] if single else texts, "dimensions": dimensions})
        except ValidationError as exc:
            fields = validation_fields(exc)
            if single:  # the caller gave one text, not a list: name it as given
                fields = [{**f, "field": "texts" if f["field"] == "texts.0" else f["field"]} for f in fields]
            raise InvalidInputError(fields) from None
        return cls(tuple(valid.texts), valid.dimensions)

    @property
    def prompt(self) -> str:
        """The texts, one per line: what the request log keeps as the prompt (under LOG_PROMPTS)."""
        return "\n".join(self.texts)

    def given(self) -> dict[str, Any]:
        """The parameters that were set (what the request log keeps as `params`)."""
        return {} if self.dimensions is None else {"dimensions": self.dimensions}

    def text_bytes(self) -> int:
        """UTF-8 bytes of every text: the basis of the free token bound."""
        return sum(len(text.encode("utf-8")) for text in self.texts)
