"""What `POST /api/batches` accepts, validated before anything is stored: a bad item fails the submission (400,
naming the item or JSONL line) rather than the batch later.

An item is an `/api/generate` body (with `prompt` or `prompt_ref`, or messages only that form accepts), a chat
completion body (`model` and `messages`), or a line of OpenAI's batch file format ({custom_id, method: POST,
url: /v1/chat/completions, body}). Our items may also carry `custom_id` and `priority` (overriding the batch's).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, NaiveDatetime, ValidationError

from api.chat_schema import ChatCompletionRequest
from api.generate import GenerateRequest
from api.request_tags import request_tags
from api.services import services
from api.tenancy import caller_key
from core.errors import AppError, InvalidInputError, validation_fields
from storage.jobs.batch_store import NewItem

MAX_ITEMS = 50_000
PRIORITY = Field(default=0, ge=-100, le=100, description="Higher runs first; above 0 high, below 0 low")
CHAT_URL = "/v1/chat/completions"
Validated = TypeVar("Validated", bound=BaseModel)


class BatchSettings(BaseModel):
    """When and how urgently the batch runs (in the JSON body, or the query string of a JSONL body)."""

    model_config = ConfigDict(extra="forbid")

    priority: int = PRIORITY
    scheduled_at: AwareDatetime | NaiveDatetime | None = Field(
        default=None, description="Not started before this time (UTC when no offset is given)")

    def start_at(self) -> datetime | None:
        """`scheduled_at` as the naive UTC the tables store."""
        at = self.scheduled_at
        return at.astimezone(UTC).replace(tzinfo=None) if at is not None and at.tzinfo else at


class BatchRequest(BatchSettings):
    """A JSON batch: its requests and settings."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {
        "requests": [{"prompt": "Say hello in French.", "max_tokens": 16},
                     {"model": "fake", "messages": [{"role": "user", "content": "Hi"}], "custom_id": "greet-2"}],
        "priority": 5}})

    requests: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ITEMS)


class OpenAIBatchLine(BaseModel):
    """One line of OpenAI's batch input file."""

    model_config = ConfigDict(extra="forbid")

    custom_id: str = Field(min_length=1, max_length=200)
    method: str = Field(pattern="^POST$")
    url: str = Field(pattern=f"^{CHAT_URL}$")
    body: dict[str, Any]


def items_of_json(body: BatchRequest) -> tuple[list[NewItem], str]:
    """The validated items of a JSON batch and its format; errors name `requests.<index>`."""
    return _items(body.requests, lambda index: f"requests.{index}")


def items_of_jsonl(text: str) -> tuple[list[NewItem], str]:
    """The validated items of a JSONL batch (blank lines skipped); errors name `line <n>` (from 1)."""
    lines: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InvalidInputError.single(f"line {number}", f"not valid JSON: {exc.msg}") from None
        if not isinstance(parsed, dict):
            raise InvalidInputError.single(f"line {number}", "each line must be a JSON object")
        lines.append(parsed)
        numbers.append(number)
    if not lines:
        raise InvalidInputError.single("(body)", "the JSONL body has no requests")
    if len(lines) > MAX_ITEMS:
        raise InvalidInputError.single("(body)", f"at most {MAX_ITEMS} requests per batch, got {len(lines)}")
    return _items(lines, lambda index: f"line {numbers[index]}")


def _items(requests: list[dict[str, Any]], where: Any) -> tuple[list[NewItem], str]:
    items, openai_lines = [], 0
    for index, request in enumerate(requests):
        try:
            if {"url", "body"} & request.keys():
                items.append(_openai_item(request))
                openai_lines += 1
            else:
                items.append(_our_item(dict(request)))
        except InvalidInputError as exc:
            raise InvalidInputError([{"field": f"{where(index)}.{f['field']}" if f["field"] != "(body)"
                                      else where(index), "reason": f["reason"]} for f in exc.fields]) from None
        except AppError as exc:  # an unknown model
            raise InvalidInputError.single(where(index), exc.message) from None
    return items, "openai" if openai_lines == len(items) else "ours"


def _openai_item(line: dict[str, Any]) -> NewItem:
    parsed = _validated(OpenAIBatchLine, line)
    item = _chat_item(parsed.body, prefix="body.")
    return NewItem(kind=item.kind, model=item.model, request=item.request, custom_id=parsed.custom_id,
                   context=item.context)


def _our_item(request: dict[str, Any]) -> NewItem:
    custom_id, priority = request.pop("custom_id", None), request.pop("priority", None)
    extras = _validated(_Extras, {"custom_id": custom_id, "priority": priority})
    if "prompt" in request or "prompt_ref" in request:
        item = _generate_item(_validated(GenerateRequest, request))
    else:  # messages: the chat form, unless only the generate form fits (e.g. `system` or `tags`)
        try:
            item = _chat_item(request)
        except InvalidInputError as chat_error:
            try:
                generate = GenerateRequest.model_validate(request)
            except ValidationError:
                raise chat_error from None
            item = _generate_item(generate)
    return NewItem(kind=item.kind, model=item.model, request=item.request, custom_id=extras.custom_id,
                   priority=extras.priority, context=item.context)


class _Extras(BaseModel):
    custom_id: str | None = Field(default=None, min_length=1, max_length=200)
    priority: int | None = PRIORITY


def _generate_item(body: GenerateRequest) -> NewItem:
    if body.stream:
        raise InvalidInputError.single("stream", "batch items are not streamed")
    model = services().registry.require_model(body.model).name
    return NewItem(kind="generate", model=model, request=body.model_dump(mode="json", exclude_none=True, by_alias=True),
                   context=_context(body.user_id, request_tags(body.tags)))


def _chat_item(request: dict[str, Any], *, prefix: str = "") -> NewItem:
    body = _validated(ChatCompletionRequest, request, prefix)
    if body.stream:
        raise InvalidInputError.single(f"{prefix}stream", "batch items are not streamed")
    if body.experiment is not None:
        raise InvalidInputError.single(f"{prefix}model", "experiments assign users live; batch items name a model")
    model = services().registry.require_model(body.model).name
    return NewItem(kind="chat", model=model, request=body.model_dump(mode="json", exclude_none=True, by_alias=True),
                   context=_context(body.user, request_tags(body.metadata_tags())))


def _context(user_id: str | None, tags: tuple[str, ...] | None) -> dict[str, Any]:
    """Whom the item's call is for, fixed at submission: the key, the user and the request's tags."""
    return {"api_key_id": caller_key(), "user_id": user_id, "tags": list(tags or ())}


def _validated(model: type[Validated], data: dict[str, Any], prefix: str = "") -> Validated:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(validation_fields(exc, prefix)) from None
