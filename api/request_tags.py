"""The tags of a call made over HTTP: the body's, the `X-Tags` header's and the API key's `metadata.tags`.

One helper, so every HTTP entry point that makes calls (/api/generate, the /v1 gateway) tags them alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from flask import g, request
from pydantic import Field, TypeAdapter, ValidationError

from core.errors import InvalidInputError
from models.params import MAX_TAGS, Tag

TAGS_HEADER = "X-Tags"
_HEADER_TAGS = TypeAdapter(Annotated[list[Tag], Field(max_length=MAX_TAGS)])  # the body's rules


def request_tags(body_tags: Sequence[str] | None) -> tuple[str, ...] | None:
    """Body tags, then `X-Tags` (comma-separated), then the key's tags, each once; None when there are none.

    Header tags follow the body's rules (non-empty, at most 200 characters, at most 50), and so does the total.
    """
    tags = tuple(dict.fromkeys((*(body_tags or ()), *_header_tags(), *g.get("api_key_tags", ()))))
    if len(tags) > MAX_TAGS:
        raise InvalidInputError.single("tags", f"at most {MAX_TAGS} tags in all (body, {TAGS_HEADER} header and "
                                               f"the API key's metadata.tags), got {len(tags)}")
    return tags or None


def _header_tags() -> list[str]:
    raw = request.headers.get(TAGS_HEADER, "").strip()
    if not raw:
        return []
    try:
        return _HEADER_TAGS.validate_python([tag.strip() for tag in raw.split(",")])
    except ValidationError as exc:
        raise InvalidInputError([{"field": ".".join((TAGS_HEADER, *map(str, err["loc"]))), "reason": err["msg"]}
                                 for err in exc.errors(include_url=False)]) from None
