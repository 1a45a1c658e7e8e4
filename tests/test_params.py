"""Generation parameters are declared once: every endpoint and the library refuse unknown or unsupported ones by
name, ranges are checked in one place, and numbers are strict."""

from __future__ import annotations

import pytest

from models.errors import UnsupportedParameterError
from models.params import CallContext, GenerationParams
from tests.fakes import FakeModel

STEP = {"name": "s", "prompt_template": "Say {input}"}
VARIANTS = [{"name": "a", "model": "fake"}, {"name": "b", "model": "fake"}]

# (method, path, body with one unknown parameter, the field the 400 must name)
UNKNOWN_PARAMETER = [
    ("/api/generate", {"prompt": "x", "surprise": 1}, "surprise"),
    ("/api/compare", {"models": ["fake"], "prompt": "x", "surprise": 1}, "surprise"),
    ("/api/compare", {"models": ["fake"], "prompt": "x", "params": {"surprise": 1}}, "params.surprise"),
    ("/api/workflow", {"steps": [{**STEP, "surprise": 1}], "input": "x"}, "steps.0.surprise"),
    ("/api/workflows", {"name": "w", "steps": [{**STEP, "surprise": 1}]}, "steps.0.surprise"),
    ("/api/experiment", {"name": "e", "variants": [{**VARIANTS[0], "params": {"surprise": 1}}, VARIANTS[1]]},
     "variants.0.params.surprise"),
    ("/api/benchmarks", {"models": ["fake"], "surprise": 1}, "surprise"),
    ("/api/budgets", {"name": "b", "scope": "global", "period": "daily", "limit_usd": 1, "surprise": 1}, "surprise"),
]


@pytest.mark.parametrize(("path", "body", "field"), UNKNOWN_PARAMETER)
def test_an_unknown_parameter_is_a_400_naming_it_on_every_endpoint(client, fake_model, path, body, field):
    response = client.post(path, json=body)
    assert response.status_code == 400, response.get_json()
    fields = [f["field"] for f in response.get_json()["error"]["details"]["fields"]]
    assert field in fields
    assert fake_model.calls == []


@pytest.mark.parametrize("path_and_body", [
    ("/api/generate", {"prompt": "x"}),
    ("/api/compare", {"models": ["fake"], "prompt": "x"}),
])
@pytest.mark.parametrize(("params", "field"), [
    ({"temperature": True}, "temperature"), ({"max_tokens": True}, "max_tokens"), ({"max_tokens": 1.5}, "max_tokens"),
    ({"max_tokens": "5"}, "max_tokens"), ({"top_p": 1.5}, "top_p"), ({"seed": "7"}, "seed"),
    ({"response_format": {"type": "json_schema"}}, "response_format"), ({"stop": [""]}, "stop.0"),
])
def test_ranges_and_strict_types_are_the_same_everywhere(client, fake_model, path_and_body, params, field):
    path, body = path_and_body
    response = client.post(path, json={**body, **params})
    assert response.status_code == 400
    assert any(f["field"].startswith(field) for f in response.get_json()["error"]["details"]["fields"])


def test_every_generation_parameter_reaches_the_provider_unchanged(client, fake_model):
    params = {"temperature": 0.3, "max_tokens": 7, "top_p": 0.8, "stop": "END", "seed": 3, "top_k": 4,
              "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}}
    assert client.post("/api/generate", json={"prompt": "x", **params}).status_code == 200
    [request] = fake_model.calls
    assert request.params.given() == {**params, "stop": ["END"]}


class _Narrow(FakeModel):
    supported_params = GenerationParams.COMMON


def test_a_parameter_the_provider_does_not_declare_is_refused_not_dropped(client, svc):
    narrow = _Narrow("narrow")
    svc.registry.register_model(narrow)
    response = client.post("/api/generate", json={"model": "narrow", "prompt": "x", "top_k": 3})
    error = response.get_json()["error"]
    assert response.status_code == 400 and error["code"] == "unsupported_parameter"
    assert [f["field"] for f in error["details"]["fields"]] == ["top_k"] and narrow.calls == []
    with pytest.raises(UnsupportedParameterError, match="top_k"):
        narrow.generate("x", thinking_budget=3, top_k=3)
    assert svc.request_log.count() == 0  # refused before the call: nothing to record


def test_library_calls_raise_value_error_naming_the_parameter(svc):
    model = svc.registry.get_model("fake")
    with pytest.raises(ValueError, match="temprature"):
        model.generate("x", temprature=0.5)
    with pytest.raises(ValueError, match="source"):
        model.generate("x", source="somewhere")


def test_the_call_context_is_validated_once():
    assert CallContext.parse(source="api", tags=["a"]).tags == ("a",)
    with pytest.raises(ValueError, match="tags"):
        CallContext.parse(tags=[""])
