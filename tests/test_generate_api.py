"""POST /api/generate, GET /api/models and GET /api/requests over HTTP."""

import json

import pytest

from api.app import create_app
from core.settings import Settings
from models.errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitedError,
)


def _events(response) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in response.get_data(as_text=True).splitlines()
            if line.startswith("data: ")]


def test_generate_returns_every_result_key(client):
    response = client.post("/api/generate", json={"prompt": "hello there", "model": "fake", "user_id": "u",
                                                  "tags": ["demo"], "max_tokens": 10, "temperature": 0.5})
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "success" and body["response"] == "echo: hello there"
    for key in ("response", "model", "provider", "input_tokens", "output_tokens", "thinking_tokens",
                "cached_tokens", "tokens", "latency", "ttft", "cost", "finish_reason", "request_id"):
        assert key in body
    assert body["tokens"] == body["input_tokens"] + body["output_tokens"]


def test_stream_sends_delta_events_then_done_with_the_result(client):
    response = client.post("/api/generate", json={"prompt": "a b c", "stream": True})
    assert response.mimetype == "text/event-stream"
    events = _events(response)
    assert [e["delta"] for e in events[:-1]] == ["echo:", " a", " b", " c"]
    assert events[-1]["done"] is True and events[-1]["response"] == "echo: a b c"
    assert events[-1]["output_tokens"] == 4


def test_a_stream_failing_before_its_first_chunk_is_an_http_error_and_is_recorded(client, fake_model):
    """The call runs up to its first chunk before the 200 goes out, so the status can still say it failed."""
    fake_model.enqueue(ProviderUnavailableError("upstream down"))
    response = client.post("/api/generate", json={"prompt": "x", "stream": True})
    assert response.status_code == 502 and response.get_json()["error"]["code"] == "provider_unavailable"
    assert client.get("/api/requests?status=error").get_json()["count"] == 1


@pytest.mark.parametrize(("error", "status", "code"), [
    (ProviderUnavailableError("down"), 502, "provider_unavailable"),
    (ProviderTimeoutError("slow"), 504, "provider_timeout"),
    (RateLimitedError("quota"), 429, "rate_limited"),
    (InvalidRequestError("bad"), 400, "invalid_request"),
])
def test_provider_errors_map_to_json_statuses_and_are_recorded(client, fake_model, error, status, code):
    fake_model.enqueue(error)
    response = client.post("/api/generate", json={"prompt": "x"})
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    (row,) = client.get("/api/requests").get_json()["requests"]
    assert (row["status"], row["error_type"]) == ("error", code)


def test_unknown_model_is_404_listing_available_models(client):
    response = client.post("/api/generate", json={"prompt": "x", "model": "gpt-99"})
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "unknown_model" and "fake-model" in error["details"]["available"]


@pytest.mark.parametrize(("body", "field"), [
    ({}, "prompt"), ({"prompt": ""}, "prompt"), ({"prompt": 5}, "prompt"),
    ({"prompt": "x", "temperature": 3}, "temperature"), ({"prompt": "x", "temperature": "hot"}, "temperature"),
    ({"prompt": "x", "max_tokens": -1}, "max_tokens"), ({"prompt": "x", "surprise": True}, "surprise"),
    ({"prompt": "x", "tags": "not-a-list"}, "tags"), ([1, 2], "(body)"), ("just a string", "(body)"),
])
def test_invalid_bodies_are_400_naming_the_field(client, fake_model, body, field):
    response = client.post("/api/generate", json=body)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    assert [f["field"] for f in error["details"]["fields"]] == [field] and error["details"]["fields"][0]["reason"]
    assert fake_model.calls == []


def test_non_json_bodies_are_rejected(client):
    malformed = client.post("/api/generate", data="{oops", content_type="application/json")
    assert malformed.status_code == 400 and malformed.get_json()["error"]["code"] == "invalid_json"
    form = client.post("/api/generate", data="prompt=x")
    assert form.status_code == 415 and form.get_json()["error"]["code"] == "unsupported_media_type"


@pytest.mark.parametrize("stream", [False, True])
def test_prompt_beyond_the_context_window_is_refused_before_the_provider(client, svc, fake_model, stream):
    fake_model.context_window = 10
    response = client.post("/api/generate", json={"prompt": "word " * 11, "stream": stream})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert error["details"] == {"model": "fake-model", "prompt_tokens": 11, "context_window": 10}
    assert fake_model.calls == []
    assert client.post("/api/generate", json={"prompt": "word " * 10, "stream": stream}).status_code == 200


def test_context_refusal_in_the_managed_path_is_recorded_once(svc, fake_model):
    fake_model.context_window = 3
    with pytest.raises(ContextLengthExceededError):
        svc.registry.get_model("fake").generate("one two three four", system="be brief")
    (row,) = svc.request_log.list()
    assert (row["status"], row["error_type"]) == ("error", "context_length_exceeded")
    assert fake_model.calls == []


def test_models_endpoint_describes_each_model(client):
    body = client.get("/api/models").get_json()
    assert body["default"] == "fake-model" and body["count"] == len(body["models"])
    fake = next(d for d in body["details"] if d["name"] == "fake-model")
    assert fake["aliases"] == ["fake"] and fake["provider"] == "fake"
    assert fake["pricing"] == {"input_per_million": 1.0, "output_per_million": 2.0, "cached_input_per_million": 0.5}
    assert fake["capabilities"]["streaming"] is True


def test_requests_lists_newest_first_with_filters(client):
    for prompt in ("first", "second"):
        client.post("/api/generate", json={"prompt": prompt})
    rows = client.get("/api/requests?limit=1").get_json()["requests"]
    assert [r["prompt"] for r in rows] == ["second"]
    assert client.get("/api/requests?model=fake-model").get_json()["count"] == 2
    assert client.get("/api/requests?model=other").get_json()["count"] == 0
    assert client.get("/api/requests?limit=0").status_code == 400


@pytest.mark.local_model
def test_offline_default_is_the_local_model_over_http(tmp_path):
    """No key, no network: the default model answers, streams, and costs nothing."""
    settings = Settings.from_env(environ={}, env_file=None,
                                 overrides={"DATABASE_URL": f"sqlite:///{tmp_path / 'offline.db'}"})
    client = create_app(settings).test_client()
    body = client.post("/api/generate", json={"prompt": "Say hello", "max_tokens": 8}).get_json()
    assert body["provider"] == "local" and body["tokens"] > 0 and body["cost"] == 0
    events = _events(client.post("/api/generate", json={"prompt": "Say hello", "max_tokens": 8, "stream": True}))
    assert len(events) > 3 and events[-1]["done"] is True and events[-1]["output_tokens"] > 0
