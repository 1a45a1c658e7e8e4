"""Images in user messages: given as a `data:` URL (the bytes inline, base64) or an `https` URL (fetched by the
provider, never by us), in OpenAI's content-part shape `{"type": "image_url", "image_url": {"url": ...}}`.

The request log keeps what was sent (how many images, their type and inline size), never the bytes.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_IMAGE_BYTES = 20 * 1024 * 1024  # the largest inline image any provider here takes (OpenAI: 20 MB)
MAX_IMAGE_URL_CHARS = 4 * MAX_IMAGE_BYTES // 3 + 200  # base64 of that, and the data URL's header
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")  # what Gemini, OpenAI and Anthropic share
_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>[A-Za-z0-9+/=\s]*)$", re.DOTALL)


class ImagePart(BaseModel):
    """One image of a message, by URL. `media_type` is the data URL's own, or guessed from an https path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(min_length=1, max_length=MAX_IMAGE_URL_CHARS)

    @field_validator("url")
    @classmethod
    def _data_or_https(cls, url: str) -> str:
        if url.startswith("data:"):
            media_type, data = _split_data_url(url)
            if len(data) > MAX_IMAGE_BYTES:
                raise ValueError(f"the image is {len(data)} bytes; at most {MAX_IMAGE_BYTES} are accepted")
            return url
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.netloc:
            raise ValueError("give an image as a data: URL (base64) or an https:// URL")
        _guess_type(parts.path)
        return url

    @property
    def inline(self) -> bool:
        return self.url.startswith("data:")

    @property
    def media_type(self) -> str:
        return _split_data_url(self.url)[0] if self.inline else _guess_type(urlsplit(self.url).path)

    @property
    def data(self) -> bytes:
        """The inline bytes (an https image has none: its provider fetches it)."""
        return _split_data_url(self.url)[1] if self.inline else b""

    @property
    def base64_data(self) -> str:
        """The inline bytes as base64, as the data URL carries them (whitespace removed)."""
        return re.sub(r"\s", "", self.url.split(",", 1)[1]) if self.inline else ""

    def summary(self) -> dict[str, Any]:
        """What the request log keeps of the image: its type and inline size, or its https URL; never bytes."""
        if self.inline:
            return {"type": "image", "media_type": self.media_type, "bytes": len(self.data)}
        return {"type": "image", "media_type": self.media_type, "url": self.url}

    def as_part(self) -> dict[str, Any]:
        """OpenAI's content part."""
        return {"type": "image_url", "image_url": {"url": self.url}}


def image_url_of(part: dict[str, Any]) -> str:
    """The URL of an `image_url` content part (its `image_url` a URL string or `{"url", "detail"}`)."""
    value = part.get("image_url")
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str):
        raise ValueError("an image_url part needs `image_url.url`")
    return url


def _split_data_url(url: str) -> tuple[str, bytes]:
    match = _DATA_URL.match(url)
    if match is None:
        raise ValueError("a data URL must read data:<image type>;base64,<data>")
    media_type = match["type"].lower()
    if media_type not in IMAGE_TYPES:
        raise ValueError(f"{media_type} is not an accepted image type; give one of {', '.join(IMAGE_TYPES)}")
    try:
        return media_type, base64.b64decode(match["data"], validate=False)
    except (binascii.Error, ValueError):
        raise ValueError("the data URL's base64 is invalid") from None


def _guess_type(path: str) -> str:
    media_type = mimetypes.guess_type(path)[0]
    if media_type not in IMAGE_TYPES:
        raise ValueError(f"the URL's file type is not one of {', '.join(IMAGE_TYPES)}; give the image as a data URL")
    return media_type
