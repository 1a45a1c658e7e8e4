"""Per-request id (echoed as X-Request-ID) and one structured log line per request."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from flask import Flask, Response, g, request

access_log = logging.getLogger("api.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def register_request_context(app: Flask) -> None:
    @app.before_request
    def _start() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id_ours = not _VALID_ID.match(incoming)  # ours is a fresh uuid: fit to name the call too
        g.request_id = str(uuid.uuid4()) if g.request_id_ours else incoming
        g.started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id") or str(uuid.uuid4())
        response.headers["X-Request-ID"] = request_id
        duration_ms = (time.perf_counter() - g.get("started", time.perf_counter())) * 1000
        access_log.info(json.dumps({
            "request_id": request_id,
            "key_id": g.get("api_key_id"),
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "duration_ms": round(duration_ms, 2),
        }))
        return response
