"""Images in user messages: accepted as a data URL or an https URL, sent in each provider's native shape, refused
with a 400 by models that cannot see them, and recorded in the request log by type and size, never by bytes."""

from __future__ import annotations

import base64

import pytest

from core.errors import InvalidInputError
from core.settings import Settings
from models.anthropic_model import AnthropicModel
from models.gemini_model import GeminiModel
from models.messages import GenerationRequest
from models.model_registry import ModelRegistry
from models.openai_compatible import OpenAICompatibleModel
from models.pricing import PricingTable
from storage.database import create_db_engine, upgrade_schema
from tests.anthropic_wire_server import AnthropicWireServer
from tests.gemini_wire_server import GeminiWireServer
from tests.openai_wire_server import OpenAIWireServer, WireReply

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # 1,032 bytes
DATA_URL = "data:image/png;base64," + base64.b64encode(PNG).decode()
HTTPS_URL = "https://images.example.com/cat.jpg"


def looking_at(url: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                         {"type": "image_url", "image_url": {"url": url}}]}]


@pytest.fixture
def registry(tmp_path):
    url = f"sqlite:///{tmp_path / 'images.db'}"
    engine = create_db_engine(url)
    upgrade_schema(engine)
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": url})
    yield ModelRegistry(engine, settings=settings, pricing=PricingTable({}), register_defaults=False)
    engine.dispose()


def test_images_are_parsed_from_openai_content_parts_and_bad_ones_refused_by_field():
    request = GenerationRequest.build(messages=looking_at(DATA_URL))
    [image] = request.images
    assert (image.media_type, image.data, request.prompt) == ("image/png", PNG, "What is in this picture?")
    assert GenerationRequest.build(messages=looking_at(HTTPS_URL)).images[0].media_type == "image/jpeg"
    refused = {
        "http://images.example.com/cat.jpg": "https://",
        "data:text/plain;base64,aGk=": "text/plain is not an accepted image type",
        "https://images.example.com/notes.txt": "file type",
    }
    for url, reason in refused.items():
        with pytest.raises(InvalidInputError) as caught:
            GenerationRequest.build(messages=looking_at(url))
        assert caught.value.details["fields"][0]["field"] == "messages.0.images.0.url"
        assert reason in caught.value.details["fields"][0]["reason"]
    with pytest.raises(InvalidInputError, match="images belong to user messages"):
        GenerationRequest.build(messages=[{"role": "assistant", "content": [
            {"type": "image_url", "image_url": {"url": DATA_URL}}]}])


def test_an_openai_compatible_upstream_receives_the_image_as_a_content_part_and_the_log_keeps_no_bytes(registry):
    with OpenAIWireServer() as server:
        server.enqueue(WireReply(text="A cat."))
        model = OpenAICompatibleModel("vision", base_url=server.base_url)
        registry.register_model(model)
        result = model.generate(messages=looking_at(DATA_URL), max_tokens=5, request_id="seen")
        [sent] = server.requests
    assert result.success
    assert sent["json"]["messages"][0]["content"] == [
        {"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": DATA_URL}}]
    row = registry.call_path.request_log.get("seen")
    assert row is not None and row["images"] == [{"type": "image", "media_type": "image/png", "bytes": len(PNG)}]
    assert [k for k, v in row.items() if base64.b64encode(PNG).decode()[:40] in str(v)] == []


def test_gemini_receives_inline_data_and_file_data(registry):
    with GeminiWireServer() as server:
        model = GeminiModel("gemini-2.5-flash", "test-key", base_url=server.base_url, max_attempts=1)
        registry.register_model(model)
        model.generate(messages=looking_at(DATA_URL), max_tokens=5)
        model.generate(messages=looking_at(HTTPS_URL), max_tokens=5)
        inline, linked = [r["json"]["contents"][0]["parts"] for r in server.requests_for("generateContent")]
    blob = inline[1]["inlineData"]  # as the SDK sends it: URL-safe base64, the type as `mime_type` or `mimeType`
    assert base64.urlsafe_b64decode(blob["data"]) == PNG
    assert blob.get("mimeType", blob.get("mime_type")) == "image/png"
    file_data = linked[1]["fileData"]
    assert file_data.get("fileUri", file_data.get("file_uri")) == HTTPS_URL
    assert file_data.get("mimeType", file_data.get("mime_type")) == "image/jpeg"


def test_anthropic_receives_base64_and_url_image_blocks(registry):
    with AnthropicWireServer() as server:
        model = AnthropicModel("claude-haiku-4-5", api_key="test-key", base_url=server.base_url, max_attempts=1)
        registry.register_model(model)
        model.generate(messages=looking_at(DATA_URL), max_tokens=5)
        model.generate(messages=looking_at(HTTPS_URL), max_tokens=5)
        inline, linked = [body["messages"][0]["content"] for body in server.messages()]
    assert inline[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                     "data": base64.b64encode(PNG).decode()}}
    assert linked[1] == {"type": "image", "source": {"type": "url", "url": HTTPS_URL}}


def test_the_local_model_refuses_images_with_a_400(client):
    body = {"model": "local", "messages": looking_at(DATA_URL), "max_tokens": 4}
    refused = client.post("/v1/chat/completions", json=body)
    assert refused.status_code == 400 and "does not accept images" in refused.json["error"]["message"]
    generate = client.post("/api/generate", json=body)
    assert generate.status_code == 400 and generate.json["error"]["code"] == "unsupported_parameter"


def test_a_group_sends_images_only_to_a_deployment_that_sees_them(registry):
    from models.base_model import Capabilities
    from models.routing.group_config import DeploymentEntry, GroupEntry, register_groups
    from tests.fakes import FakeModel

    blind, seeing = FakeModel("blind"), FakeModel("seeing")
    seeing.capabilities = Capabilities(vision=True)
    for model in (blind, seeing):
        registry.register_model(model)
    register_groups(registry, [GroupEntry(name="eyes", strategy="priority", deployments=[
        DeploymentEntry(model="blind"), DeploymentEntry(model="seeing")])])
    result = registry.require_model("eyes").generate(messages=looking_at(DATA_URL))
    assert result.success and (len(blind.calls), len(seeing.calls)) == (0, 1)
    assert registry.require_model("eyes").generate("text only").success and len(blind.calls) == 1
