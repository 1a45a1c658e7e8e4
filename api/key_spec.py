"""What a new API key may carry, validated once for `POST /api/keys` and `flask keys create` alike."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from api.key_store import KeyPolicy
from api.openapi import OpenApiConfigDict
from models.params import MAX_TAGS, Integer, Tag
from storage.clock import utcnow

ModelName = Annotated[str, Field(min_length=1, max_length=200)]
PerMinute = Annotated[Integer, Field(ge=1, le=2**31 - 1)]
MAX_ALLOWED_MODELS = 100


class KeyMetadata(BaseModel):
    """The caller's own JSON object; its `tags`, if any, are recorded with every call the key makes."""

    model_config = ConfigDict(extra="allow")

    tags: list[Tag] | None = Field(default=None, max_length=MAX_TAGS)


class KeySpec(BaseModel):
    """A new key: its name, and optionally admin rights, a model allow-list, an expiry, limits and metadata."""

    model_config = OpenApiConfigDict(extra="forbid", openapi_extra={"example": {
        "name": "team-a", "models": ["local"], "expires_at": "2030-01-01T00:00:00Z", "rpm": 60, "tpm": 100_000,
        "metadata": {"tags": ["team-a"], "owner": "ana@example.com"},
    }})

    name: str = Field(min_length=1, max_length=200)
    admin: StrictBool = Field(default=False, description="May manage keys and see every tenant's data")
    models: list[ModelName] | None = Field(default=None, min_length=1, max_length=MAX_ALLOWED_MODELS,
                                           description="The models it may call (names or aliases); default all")
    expires_at: datetime | None = Field(default=None, description="ISO 8601, in the future; UTC when no offset")
    rpm: PerMinute | None = Field(default=None, description="Calls per clock minute; default unlimited")
    tpm: PerMinute | None = Field(default=None, description="Tokens per clock minute; default unlimited")
    metadata: KeyMetadata | None = None

    @field_validator("expires_at", mode="before")
    @classmethod
    def _iso_8601(cls, value: Any) -> Any:
        if value is not None and not isinstance(value, str | datetime):
            raise ValueError("give an ISO 8601 date and time, e.g. 2030-01-01T00:00:00Z")
        return value

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        if value <= utcnow():
            raise ValueError("must be in the future")
        return value

    def policy(self, canonical_model: Callable[[str], str]) -> KeyPolicy:
        """The stored policy: aliases in the allow-list replaced by the models they name, each listed once."""
        models = tuple(dict.fromkeys(map(canonical_model, self.models))) if self.models is not None else None
        metadata = self.metadata.model_dump(exclude_unset=True) if self.metadata is not None else None
        return KeyPolicy(models=models, expires_at=self.expires_at, rpm=self.rpm, tpm=self.tpm, metadata=metadata)
