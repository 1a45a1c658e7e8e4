"""A local server that speaks the Gemini REST wire format, so tests can drive the real google-genai SDK.

Facts from `../shared/docs/GEMINI_WIRE.md` (checked against google-genai 3.4.0):

- `POST /{v}/models/{m}:generateContent` answers one JSON response object;
- `POST /{v}/models/{m}:streamGenerateContent?alt=sse` answers `data: <response object>` events;
- `POST /{v}/models/{m}:countTokens` answers `{"totalTokens": N}`;
- `POST /{v}/models/{m}:batchEmbedContents` answers `{"embeddings": [{"values": [...]}, ...]}`, one per request
  in order: `fake_vector(text, outputDimensionality or 8)`; no usage, as documented, unless scripted;
- `GET /{v}/models` and `GET /{v}/models/{m}` list and describe models;
- errors are `{"error": {"code", "message", "status"}}` with that HTTP status.

Usage::

    with GeminiWireServer() as server:
        server.enqueue(WireReply(text="Hi", prompt_tokens=7, candidates_tokens=5, thoughts_tokens=2),
                       WireReply(status=429))
        model = GeminiModel("gemini-2.5-flash", api_key="k", base_url=server.base_url)
        ...
        server.requests  # [{"method", "path", "headers", "json", "model", "action"}, ...]

Queued replies answer `generateContent`, `streamGenerateContent` and `batchEmbedContents`, in order (for
embeddings only their status, message, delay, fault, and `prompt_tokens`, answered as
`usageMetadata.promptTokenCount`). With an empty queue
the reply is deterministic: the text `"gemini says: " + <prompt text>`, `promptTokenCount` = the
number of whitespace-separated words in the request's contents and system instruction,
`candidatesTokenCount` = the number of words in the reply. `countTokens` counts words the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.fakes import fake_vector
from tests.wire_server import Fault, ScriptedServer, WireHandler, words

ERROR_STATUS = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 502: "UNAVAILABLE",
    503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
MODELS = {
    "gemini-2.5-pro": 65_536, "gemini-2.5-flash": 65_536, "gemini-2.5-flash-lite": 65_536,
    "gemini-2.0-flash": 8_192, "gemini-2.0-flash-exp": 8_192,
}


@dataclass
class WireReply:
    """One scripted answer. Token counts left as None are counted in words, like the default reply.

    `status` other than 200 answers an error body (`error_status`, `message`); `delay` waits before
    answering (to provoke client timeouts); `chunks` are the stream's texts (default: one per word);
    `stream_error` sends an in-stream `{"error": ...}` event with that code after the chunks; `fault`
    answers with a transport fault instead (see `tests.wire_server.WireHandler`); `block_reason` answers
    a blocked prompt: no candidates, only `promptFeedback.blockReason` (and the usage).
    """

    text: str = ""
    prompt_tokens: int | None = None
    candidates_tokens: int | None = None
    thoughts_tokens: int = 0
    cached_tokens: int = 0
    status: int = 200
    error_status: str | None = None
    message: str | None = None
    delay: float = 0.0
    chunks: list[str] | None = None
    chunk_delay: float = 0.0
    stream_error: int | None = None
    finish_reason: str = "STOP"
    fault: Fault | None = None
    block_reason: str | None = None
    function_calls: list[dict[str, Any]] | None = None  # [{"name", "args"}]: answered as functionCall parts


class GeminiWireServer(ScriptedServer[WireReply]):
    """A threaded HTTP server on 127.0.0.1 with a random port; use as a context manager.

    With `api_key` set, requests whose `x-goog-api-key` differs get Gemini's answer to a bad key
    (400 INVALID_ARGUMENT with reason API_KEY_INVALID).
    """

    name = "gemini-wire"

    def requests_for(self, action: str) -> list[dict[str, Any]]:
        """The recorded requests of one action, e.g. `generateContent` or `streamGenerateContent`."""
        with self._lock:
            return [r for r in self.requests if r["action"] == action]


def request_text(body: dict[str, Any]) -> tuple[str, str]:
    """(prompt text of `contents`, text of the system instruction); accepts camelCase and snake_case."""
    def texts(content: Any) -> list[str]:
        if not isinstance(content, dict):
            return []
        return [p.get("text", "") for p in content.get("parts", []) if isinstance(p, dict)]

    prompt = " ".join(t for c in body.get("contents", []) for t in texts(c))
    system = body.get("systemInstruction", body.get("system_instruction"))
    return prompt, " ".join(texts(system))


def response_object(text: str, usage: dict[str, int] | None, model: str, finish: str | None,
                    function_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"functionCall": call} for call in function_calls or ()] or [{"text": text}]
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    obj: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": "wire-response"}
    if usage is not None:
        obj["usageMetadata"] = usage
    return obj


def error_body(code: int, status: str | None = None, message: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message or f"wire server error {code}",
                      "status": status or ERROR_STATUS.get(code, "UNKNOWN")}}


class _Handler(WireHandler):
    wire: GeminiWireServer  # set on the per-server subclass

    def do_GET(self) -> None:
        version, model, action = self._route(record_body=None)
        if model is None:
            self._json(200, {"models": [_model_info(name) for name in MODELS]})
        elif model in MODELS:
            self._json(200, _model_info(model))
        else:
            self._json(404, error_body(404, message=f"models/{model} is not found"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._json(400, error_body(400, message="Invalid JSON payload"))
        version, model, action = self._route(record_body=body)
        if self.wire.api_key is not None and self.headers.get("x-goog-api-key") != self.wire.api_key:
            return self._json(400, _bad_key_body())
        prompt, system = request_text(body)
        if action == "countTokens":
            return self._json(200, {"totalTokens": words(prompt) + words(system)})
        if action == "batchEmbedContents":
            return self._embeddings(body)
        if action not in ("generateContent", "streamGenerateContent"):
            return self._json(404, error_body(404, message=f"unknown action {action!r}"))
        reply = self.wire._next_reply() or WireReply(text=f"gemini says: {prompt}")
        self.wire._sleep(reply.delay)
        if reply.status != 200:
            return self._json(reply.status, error_body(reply.status, reply.error_status, reply.message))
        if self.answer_fault_first(reply.fault, streaming=action == "streamGenerateContent"):
            return None
        usage = _usage(reply, words(prompt) + words(system))
        if reply.block_reason is not None:
            return self._blocked(reply.block_reason, usage, model or "", action == "streamGenerateContent")
        if action == "generateContent":
            text = reply.text or "".join(reply.chunks or [])
            return self._json(200, response_object(text, usage, model or "", reply.finish_reason,
                                                   reply.function_calls), reply.fault)
        self._stream(reply, usage, model or "")

    def _embeddings(self, body: dict[str, Any]) -> None:
        reply = self.wire._next_reply() or WireReply()
        self.wire._sleep(reply.delay)
        if reply.status != 200:
            return self._json(reply.status, error_body(reply.status, reply.error_status, reply.message))
        if self.answer_fault_first(reply.fault, streaming=False):
            return None
        payload: dict[str, Any] = {"embeddings": [_embedding(request) for request in body.get("requests", [])]}
        if reply.prompt_tokens is not None:
            payload["usageMetadata"] = {"promptTokenCount": reply.prompt_tokens}
        self._json(200, payload, reply.fault)

    def _route(self, record_body: dict[str, Any] | None) -> tuple[str, str | None, str | None]:
        """Record the request; split `/{v}/models/{m}:{action}` into its parts."""
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        version = parts[0] if parts else ""
        model = action = None
        if len(parts) >= 3 and parts[1] == "models":
            model, _, action = "/".join(parts[2:]).partition(":")
            action = action or None
        self.wire._record({
            "method": self.command, "path": self.path, "headers": dict(self.headers.items()),
            "json": record_body, "model": model, "action": action,
        })
        return version, model, action

    def _stream(self, reply: WireReply, usage: dict[str, int], model: str) -> None:
        chunks = reply.chunks if reply.chunks is not None else _split_words(reply.text)
        finishes = reply.stream_error is None and reply.fault is None
        events = []
        for index, chunk in enumerate(chunks):
            last = finishes and index == len(chunks) - 1
            partial = {"promptTokenCount": usage["promptTokenCount"],
                       "candidatesTokenCount": words("".join(chunks[: index + 1]))}
            events.append(_event(response_object(chunk, usage if last else partial, model,
                                                 reply.finish_reason if last else None)))
        ending = []
        if reply.stream_error is not None:
            ending.append(_event(error_body(reply.stream_error, reply.error_status, reply.message)))
        self.send_stream(events, ending, fault=reply.fault, delay=reply.chunk_delay,
                         drip_event=lambda text: _event(response_object(text, None, model, None)))

    def _blocked(self, reason: str, usage: dict[str, int], model: str, streaming: bool) -> None:
        payload = {"promptFeedback": {"blockReason": reason}, "usageMetadata": usage, "modelVersion": model}
        if streaming:
            return self.send_stream([_event(payload)])
        self._json(200, payload)

    def _json(self, status: int, payload: dict[str, Any], fault: Fault | None = None) -> None:
        self.send_json(status, payload, "application/json; charset=UTF-8", fault)


def _embedding(request: dict[str, Any]) -> dict[str, Any]:
    """The vector of one of batchEmbedContents' requests."""
    text, _ = request_text({"contents": [request.get("content")]})
    return {"values": fake_vector(text, request.get("outputDimensionality") or 8)}


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\r\n\r\n".encode()


def _usage(reply: WireReply, counted_prompt: int) -> dict[str, int]:
    text = reply.text or "".join(reply.chunks or [])
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else counted_prompt
    candidates = reply.candidates_tokens if reply.candidates_tokens is not None else words(text)
    usage = {"promptTokenCount": prompt, "candidatesTokenCount": candidates,
             "totalTokenCount": prompt + candidates + reply.thoughts_tokens}
    if reply.thoughts_tokens:
        usage["thoughtsTokenCount"] = reply.thoughts_tokens
    if reply.cached_tokens:
        usage["cachedContentTokenCount"] = reply.cached_tokens
    return usage


def _split_words(text: str) -> list[str]:
    """`"a b c"` -> `["a", " b", " c"]`: several chunks that join back to the text."""
    pieces = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(pieces)] or [""]


def _model_info(name: str) -> dict[str, Any]:
    return {
        "name": f"models/{name}", "displayName": name, "version": "001",
        "inputTokenLimit": 1_048_576, "outputTokenLimit": MODELS[name],
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


def _bad_key_body() -> dict[str, Any]:
    body = error_body(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
    body["error"]["details"] = [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                 "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]
    return body


GeminiWireServer.handler = _Handler
