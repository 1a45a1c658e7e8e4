"""A lean OpenAI-wire upstream for load tests: asyncio, keep-alive, one canned chat completion after `--delay` s.

Cheap per request (no framework), so on a shared 2-core machine nearly all CPU goes to the system under
test. Answers `POST .../chat/completions` (any prefix) and `GET /health`; anything else is a 404.
Usage: python -m benchmarks.upstream --port 8001 [--delay 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import json

REPLY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 1700000000, "model": "fake-gpt",
    "system_fingerprint": None,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "pong"}, "logprobs": None,
                 "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6,
              "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}},
}).encode()
MAX_HEADER = 64 * 1024


def response(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


OK = response("200 OK", REPLY)
HEALTHY = response("200 OK", b'{"status":"ok"}')
NOT_FOUND = response("404 Not Found", b'{"error":{"message":"not found","type":"invalid_request_error"}}')


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    """Serve requests on one keep-alive connection until the client closes it."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if len(head) > MAX_HEADER:
                break
            request_line, _, headers = head.decode("latin-1").partition("\r\n")
            length = 0
            for line in headers.split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip())
            if length:
                await reader.readexactly(length)
            path = request_line.split(" ")[1] if " " in request_line else ""
            if path.endswith("/chat/completions"):
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(OK)
            else:
                writer.write(HEALTHY if path == "/health" else NOT_FOUND)
            await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def serve(host: str, port: int, delay: float) -> None:
    server = await asyncio.start_server(lambda r, w: handle(r, w, delay), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each chat completion answers")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.delay))


if __name__ == "__main__":
    main()
