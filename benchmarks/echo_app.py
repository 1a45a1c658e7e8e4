"""The bare-Flask baseline for the server benchmark: one JSON echo endpoint, nothing else.

Served with the very same `gunicorn.conf.py`: gunicorn -c gunicorn.conf.py 'benchmarks.echo_app:create_app()'
"""

from __future__ import annotations

from flask import Flask, Response, jsonify, request


def create_app() -> Flask:
    """A Flask app whose `POST /echo` returns the JSON body it was sent, and `GET /health`."""
    app = Flask(__name__)

    @app.post("/echo")
    def echo() -> Response:
        return jsonify(request.get_json())

    @app.get("/health")
    def health() -> Response:
        return jsonify({"status": "healthy"})

    return app
