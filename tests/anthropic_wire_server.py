"""A local server that speaks Anthropic's Messages wire format, so tests drive the real `anthropic` SDK.

- `POST /v1/messages` (the key in `x-api-key`, or as a bearer token, which is how SDK 2.x sends it; an
  `anthropic-version` header is required) answers a `message` object whose `content` holds
  `text` and `tool_use` blocks, or with `"stream": true` server-sent events, each an `event:` line and a `data:`
  line: `message_start` (the message, empty content, and the prompt's usage), `ping`, per block
  `content_block_start` / `content_block_delta` (`text_delta`, or `input_json_delta` pieces of a tool call's
  input) / `content_block_stop`, then `message_delta` (`stop_reason`, cumulative `usage.output_tokens`) and
  `message_stop`; a scripted `stream_error` sends `event: error` instead of the ending;
- errors are `{"type": "error", "error": {"type", "message"}}` with that HTTP status.

Token counts, Anthropic's way: `usage.input_tokens` EXCLUDES `cache_creation_input_tokens` (prompt-cache writes)
and `cache_read_input_tokens` (reads); the three are disjoint and together are the whole prompt. Ours (the
request log, `Usage`): `input_tokens` INCLUDES both, `cached_tokens` is the cache reads and `cache_write_tokens`
the cache writes, both subsets of `input_tokens`. `output_tokens` is the same on both sides.

Usage::

    with AnthropicWireServer() as server:
        server.enqueue(WireReply(text="Hi", input_tokens=7, output_tokens=5, cache_read_input_tokens=2),
                       WireReply(status=529))
        model = AnthropicModel("claude-haiku-4-5", api_key="k", base_url=server.base_url)
        server.messages()  # the recorded request bodies

With an empty queue the reply is deterministic: the text `"claude says: " + <last user text>`, `input_tokens` =
the whitespace-separated words of the system prompt and every text block, `output_tokens` = the words of the
reply, no cache tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.wire_server import Fault, ScriptedServer, WireHandler, words

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               504: "timeout_error", 529: "overloaded_error"}


@dataclass
class WireReply:
    """One scripted answer. Token counts left None: input and output counted in words, cache counts 0.

    `status` other than 200 answers an error body (`message`, else a default); `delay` waits before answering;
    `chunks` are the stream's text deltas (default: one per word); `tool_uses` (`{"id", "name", "input"}`) follow
    the text, with stop_reason `tool_use`; `stream_error` (an error type, e.g. `overloaded_error`) ends a stream
    with an `error` event after its chunks; `fault` commits a transport fault (see `tests.wire_server`).
    """

    text: str = ""
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    status: int = 200
    message: str | None = None
    delay: float = 0.0
    chunks: list[str] | None = None
    chunk_delay: float = 0.0
    stream_error: str | None = None
    stop_reason: str = "end_turn"
    fault: Fault | None = None
    tool_uses: list[dict[str, Any]] | None = None


class AnthropicWireServer(ScriptedServer[WireReply]):
    """A threaded HTTP server on 127.0.0.1 with a random port; use as a context manager.

    With `api_key` set, a request with another `x-api-key` gets a 401 whose message echoes the key it was sent,
    so tests can prove we never repeat it.
    """

    name = "anthropic-wire"

    def messages(self) -> list[dict[str, Any]]:
        """The recorded Messages request bodies, in order."""
        with self._lock:
            return [r["json"] for r in self.requests if r["path"].endswith("/v1/messages")]


def error_body(status: int, message: str | None = None, kind: str | None = None) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind or ERROR_TYPES.get(status, "api_error"),
                                       "message": message or f"wire server error {status}"}}


def _texts(body: dict[str, Any]) -> list[str]:
    """The system prompt and every text of the conversation (plain content or text / tool_result blocks)."""
    texts = [str(body.get("system") or "")]
    for message in body.get("messages") or []:
        content = message.get("content")
        blocks = content if isinstance(content, list) else [{"type": "text", "text": content or ""}]
        texts.extend(str(b.get("text") or b.get("content") or "") for b in blocks if isinstance(b, dict))
    return texts


def _last_user_text(body: dict[str, Any]) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "".join(b.get("text", "") for b in content if b.get("type") == "text")
    return ""


def usage_object(reply: WireReply, body: dict[str, Any]) -> dict[str, Any]:
    """The reply's usage the Anthropic way: `input_tokens` without the cache reads and writes."""
    text = reply.text or "".join(reply.chunks or [])
    prompt = reply.input_tokens if reply.input_tokens is not None else sum(words(t) for t in _texts(body))
    return {"input_tokens": prompt, "output_tokens": reply.output_tokens if reply.output_tokens is not None
            else words(text), "cache_creation_input_tokens": reply.cache_creation_input_tokens,
            "cache_read_input_tokens": reply.cache_read_input_tokens}


class _Handler(WireHandler):
    wire: AnthropicWireServer  # set on the per-server subclass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = {}
        self.wire._record({"method": "POST", "path": self.path, "headers": dict(self.headers.items()),
                           "json": body})
        if urlsplit(self.path).path != "/v1/messages":
            return self.send_json(404, error_body(404, f"Unknown path {self.path}"))
        if not self.headers.get("anthropic-version"):
            return self.send_json(400, error_body(400, "anthropic-version: header is required"))
        key = self.headers.get("x-api-key") or (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        if self.wire.api_key is not None and key != self.wire.api_key:
            return self.send_json(401, error_body(401, f"invalid x-api-key: {key}"))
        reply = self.wire._next_reply() or WireReply(text=f"claude says: {_last_user_text(body)}")
        self.wire._sleep(reply.delay)
        if reply.status != 200:
            return self.send_json(reply.status, error_body(reply.status, reply.message))
        if self.answer_fault_first(reply.fault, streaming=bool(body.get("stream"))):
            return None
        usage = usage_object(reply, body)
        stop_reason = "tool_use" if reply.tool_uses else reply.stop_reason
        message = {"id": "msg_wire", "type": "message", "role": "assistant", "model": body.get("model"),
                   "stop_sequence": None}
        if body.get("stream"):
            return self._stream(reply, {**message, "content": [], "stop_reason": None, "usage": usage}, stop_reason)
        text = reply.text or "".join(reply.chunks or [])
        content = [{"type": "text", "text": text}] if text else []
        content += [{"type": "tool_use", **tool} for tool in reply.tool_uses or ()]
        self.send_json(200, {**message, "content": content, "stop_reason": stop_reason, "usage": usage},
                       fault=reply.fault)

    def _stream(self, reply: WireReply, start: dict[str, Any], stop_reason: str) -> None:
        chunks = reply.chunks if reply.chunks is not None else _split_words(reply.text)
        usage = start["usage"]
        # message_start reports the prompt's counts and a first output count; message_delta the final one.
        events = [_event("message_start", {"message": {**start, "usage": {**usage, "output_tokens": 1}}}),
                  _event("ping", {})]
        if chunks:
            events.append(_block_start(0, {"type": "text", "text": ""}))
            events += [_block_delta(0, {"type": "text_delta", "text": chunk}) for chunk in chunks]
            events.append(_event("content_block_stop", {"index": 0}))
        for index, tool in enumerate(reply.tool_uses or (), start=1 if chunks else 0):
            events.append(_block_start(index, {"type": "tool_use", "id": tool["id"], "name": tool["name"],
                                               "input": {}}))
            arguments = json.dumps(tool["input"])
            events += [_block_delta(index, {"type": "input_json_delta", "partial_json": arguments[at:at + 5]})
                       for at in range(0, len(arguments), 5)]
            events.append(_event("content_block_stop", {"index": index}))
        if reply.stream_error is not None:
            ending = [_event("error", error_body(500, reply.message, reply.stream_error))]
        else:
            ending = [_event("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                               "usage": {"output_tokens": usage["output_tokens"]}}),
                      _event("message_stop", {})]
        self.send_stream(events, ending, fault=reply.fault, delay=reply.chunk_delay,
                         drip_event=lambda text: _block_delta(0, {"type": "text_delta", "text": text}))


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **payload})}\n\n".encode()


def _block_start(index: int, block: dict[str, Any]) -> bytes:
    return _event("content_block_start", {"index": index, "content_block": block})


def _block_delta(index: int, delta: dict[str, Any]) -> bytes:
    return _event("content_block_delta", {"index": index, "delta": delta})


def _split_words(text: str) -> list[str]:
    """`"a b c"` -> `["a", " b", " c"]`: several chunks that join back to the text; none for no text."""
    pieces = text.split(" ") if text else []
    return [p if i == 0 else " " + p for i, p in enumerate(pieces)]


AnthropicWireServer.handler = _Handler
