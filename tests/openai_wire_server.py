"""A local server that speaks the OpenAI chat-completions wire format, so tests drive the real `openai` SDK.

- `POST /v1/chat/completions` answers a `chat.completion` object, or with `"stream": true` server-sent
  events: `data: <chat.completion.chunk>` per piece, a chunk carrying `finish_reason`, then (when
  `stream_options.include_usage` is set) a chunk with `"choices": []` and the usage, then `data: [DONE]`;
- `POST /v1/embeddings` answers an embeddings list: per input, `fake_vector(input, dimensions or 8)` (exact in
  float32), base64-encoded when the body asks for `encoding_format: base64` (as the SDK does), else floats;
  `prompt_tokens` = the words of all inputs;
- `GET /v1/models` lists the models it has answered for;
- Azure OpenAI's layout answers the same: `POST /openai/deployments/{deployment}/chat/completions` (and
  `/embeddings`) with the key in the `api-key` header instead of `Authorization: Bearer`;
- errors are `{"error": {"message", "type", "param", "code"}}` with that HTTP status.

Usage::

    with OpenAIWireServer() as server:
        server.enqueue(WireReply(text="Hi", prompt_tokens=7, completion_tokens=5, cached_tokens=2),
                       WireReply(status=429))
        model = OpenAICompatibleModel("m", base_url=server.base_url)
        server.requests  # [{"method", "path", "headers", "json"}, ...]

Queued replies answer chat completions and embeddings in order (for embeddings, only their status, message,
delay, fault and `prompt_tokens` count). With an empty queue the reply is deterministic: the
text `"openai says: " + <last user message>`, `prompt_tokens` = the number of whitespace-separated
words of all messages, `completion_tokens` = the words of the reply, and no token details.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.fakes import fake_vector
from tests.wire_server import Fault, ScriptedServer, WireHandler, words

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "permission_error",
               404: "invalid_request_error", 408: "timeout", 429: "rate_limit_exceeded", 500: "server_error",
               502: "server_error", 503: "server_error", 504: "server_error"}
AZURE_PATH = re.compile(r"^/openai/deployments/[^/]+(/chat/completions|/embeddings)$")


@dataclass
class WireReply:
    """One scripted answer. Token counts left as None are counted in words; details left None are omitted.

    `status` other than 200 answers an error body; `delay` waits before answering (to provoke client
    timeouts); `chunks` are the stream's texts (default: one per word); `stream_error` sends an
    in-stream `{"error": {...}}` event with that code after the chunks instead of finishing; `fault`
    answers with a transport fault instead (see `tests.wire_server.WireHandler`).
    """

    text: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    status: int = 200
    message: str | None = None
    error_code: str | None = None
    delay: float = 0.0
    chunks: list[str] | None = None
    chunk_delay: float = 0.0
    stream_error: int | None = None
    finish_reason: str = "stop"
    fault: Fault | None = None
    tool_calls: list[dict[str, Any]] | None = None  # answered instead of text, with finish_reason tool_calls


class OpenAIWireServer(ScriptedServer[WireReply]):
    """A threaded HTTP server on 127.0.0.1 with a random port; use as a context manager.

    With `api_key` set, a request whose bearer token differs gets a 401 whose message echoes the token
    it was sent in full (worse than OpenAI, which masks it), so tests can prove we never repeat it.
    """

    name = "openai-wire"
    path_prefix = "/v1"

    @property
    def azure_endpoint(self) -> str:
        """The server's root, as an Azure OpenAI resource endpoint (`https://<resource>.openai.azure.com`)."""
        return self.base_url.removesuffix(self.path_prefix)

    def completions(self) -> list[dict[str, Any]]:
        """The recorded chat-completion request bodies, in order."""
        with self._lock:
            return [r["json"] for r in self.requests if r["path"].endswith("/chat/completions")]

    def embedding_requests(self) -> list[dict[str, Any]]:
        """The recorded embeddings request bodies, in order."""
        with self._lock:
            return [r["json"] for r in self.requests if r["path"].endswith("/embeddings")]


def error_body(status: int, message: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message or f"wire server error {status}",
                      "type": ERROR_TYPES.get(status, "api_error"), "param": None, "code": code}}


def usage_object(reply: WireReply, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The reply's usage: scripted counts, else words; details only when scripted."""
    text = reply.text or "".join(reply.chunks or [])
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else sum(
        words(str(m.get("content") or "")) for m in messages)
    completion = reply.completion_tokens if reply.completion_tokens is not None else words(text)
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if reply.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens, "audio_tokens": 0}
    if reply.reasoning_tokens is not None:
        usage["completion_tokens_details"] = {"reasoning_tokens": reply.reasoning_tokens, "audio_tokens": 0}
    return usage


class _Handler(WireHandler):
    wire: OpenAIWireServer  # set on the per-server subclass

    def do_GET(self) -> None:
        self.wire._record({"method": "GET", "path": self.path, "headers": dict(self.headers.items()), "json": None})
        if urlsplit(self.path).path.rstrip("/") != "/v1/models":
            return self.send_json(404, error_body(404, f"Unknown path {self.path}"))
        models = sorted({str(body.get("model")) for body in self.wire.completions()})
        self.send_json(200, {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "wire"}
                                                         for m in models]})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return self.send_json(400, error_body(400, "We could not parse the JSON body of your request."))
        self.wire._record({"method": "POST", "path": self.path, "headers": dict(self.headers.items()), "json": body})
        endpoint, token = self._endpoint_and_key(urlsplit(self.path).path)
        if endpoint is None:
            return self.send_json(404, error_body(404, f"Unknown path {self.path}"))
        if self.wire.api_key is not None and token != self.wire.api_key:
            return self.send_json(401, error_body(401, f"Incorrect API key provided: {token}.", "invalid_api_key"))
        if endpoint == "/embeddings":
            return self._embeddings(body)
        messages = body.get("messages") or []
        last_user = next((str(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), "")
        reply = self.wire._next_reply() or WireReply(text=f"openai says: {last_user}")
        self.wire._sleep(reply.delay)
        if reply.status != 200:
            return self.send_json(reply.status, error_body(reply.status, reply.message, reply.error_code))
        if self.answer_fault_first(reply.fault, streaming=bool(body.get("stream"))):
            return None
        usage = usage_object(reply, messages)
        if body.get("stream"):
            return self._stream(reply, usage, body)
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or "".join(reply.chunks or [])}
        if reply.tool_calls:
            message = {"role": "assistant", "content": None, "tool_calls": reply.tool_calls}
        self.send_json(200, {
            "id": "chatcmpl-wire", "object": "chat.completion", "created": int(time.time()),
            "model": body.get("model"), "system_fingerprint": None,
            "choices": [{"index": 0, "message": message, "logprobs": None,
                         "finish_reason": "tool_calls" if reply.tool_calls else reply.finish_reason}],
            "usage": usage,
        }, fault=reply.fault)

    def _endpoint_and_key(self, path: str) -> tuple[str | None, str]:
        """The endpoint a path names (`/chat/completions` or `/embeddings`, None for any other path) in OpenAI's
        layout or Azure's, and the key the request carries where that layout puts it."""
        azure = AZURE_PATH.match(path)
        if azure:
            return azure.group(1), self.headers.get("api-key") or ""
        if path in ("/v1/chat/completions", "/v1/embeddings"):
            return path.removeprefix("/v1"), (self.headers.get("Authorization") or "").removeprefix("Bearer ")
        return None, ""

    def _embeddings(self, body: dict[str, Any]) -> None:
        reply = self.wire._next_reply() or WireReply()
        self.wire._sleep(reply.delay)
        if reply.status != 200:
            return self.send_json(reply.status, error_body(reply.status, reply.message, reply.error_code))
        if self.answer_fault_first(reply.fault, streaming=False):
            return None
        inputs = body["input"] if isinstance(body.get("input"), list) else [body.get("input")]
        vectors = [fake_vector(str(text), body.get("dimensions") or 8) for text in inputs]
        encode = _base64 if body.get("encoding_format") == "base64" else list
        prompt = reply.prompt_tokens if reply.prompt_tokens is not None else sum(words(str(t)) for t in inputs)
        self.send_json(200, {
            "object": "list", "model": body.get("model"),
            "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }, fault=reply.fault)

    def _stream(self, reply: WireReply, usage: dict[str, Any], body: dict[str, Any]) -> None:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        chunks = reply.chunks if reply.chunks is not None else _split_words(reply.text)

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            obj = {"id": "chatcmpl-wire", "object": "chat.completion.chunk", "created": int(time.time()),
                   "model": body.get("model"),
                   "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
            return {**obj, "usage": None} if include_usage else obj

        events = [_event(chunk({"content": c})) for c in chunks]
        for index, call in enumerate(reply.tool_calls or ()):  # a call's name first, then its arguments in pieces
            head = {"index": index, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}
            events.append(_event(chunk({"tool_calls": [head]})))
            arguments = call["function"]["arguments"]
            for start in range(0, len(arguments), 5):
                piece = {"index": index, "function": {"arguments": arguments[start:start + 5]}}
                events.append(_event(chunk({"tool_calls": [piece]})))
        if reply.stream_error is not None:
            ending = [_event(error_body(reply.stream_error, reply.message, str(reply.stream_error)))]
        else:
            ending = [_event(chunk({}, "tool_calls" if reply.tool_calls else reply.finish_reason))]
            if include_usage:
                ending.append(_event({**chunk({}), "choices": [], "usage": usage}))
            ending.append(b"data: [DONE]\n\n")
        self.send_stream(events, ending, preamble=[_event(chunk({"role": "assistant", "content": ""}))],
                         fault=reply.fault, delay=reply.chunk_delay,
                         drip_event=lambda text: _event(chunk({"content": text})))


def _base64(vector: list[float]) -> str:
    """A vector as OpenAI sends it with `encoding_format: base64`: little-endian float32s."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _event(payload: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(payload)}\n\n".encode()


def _split_words(text: str) -> list[str]:
    """`"a b c"` -> `["a", " b", " c"]`: several chunks that join back to the text."""
    pieces = text.split(" ")
    return [p if i == 0 else " " + p for i, p in enumerate(pieces)]


OpenAIWireServer.handler = _Handler
