"""`POST /v1/embeddings` in OpenAI's schema, on the managed call path (recorded with `operation` embeddings).

The official SDK asks for base64 unless told otherwise: vectors are then little-endian float32, as OpenAI's.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

from flask import Response, g, jsonify
from pydantic import BaseModel, ConfigDict

from api.openapi import ApiBlueprint, json_object
from api.request_tags import request_tags
from api.services import services
from models.embeddings import Dimensions, EmbeddingRequest, EmbeddingText, EmbeddingTexts
from models.params import CallContext, UserId

bp = ApiBlueprint("gateway_embeddings", __name__, url_prefix="/v1")


class EmbeddingsBody(BaseModel):
    """OpenAI's embeddings request; `input` is one text or a list of texts (token arrays are not accepted)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    input: EmbeddingText | EmbeddingTexts
    dimensions: Dimensions | None = None
    encoding_format: Literal["float", "base64"] = "float"
    user: UserId | None = None


@bp.post("/embeddings", responses={200: json_object("An embeddings list: one vector per input, in order, and usage")})
def embeddings(body: EmbeddingsBody) -> Response:
    """Embed one text or a list of texts with a model that embeds."""
    model = services().registry.require_model(body.model)
    context = CallContext(source="api", user_id=body.user, api_key_id=g.get("api_key_id"), tags=request_tags(None))
    result = model.run_embeddings(EmbeddingRequest.build(body.input, dimensions=body.dimensions), context)
    data = [{"object": "embedding", "index": index, "embedding": _encoded(vector, body.encoding_format)}
            for index, vector in enumerate(result.vectors)]
    tokens = result.input_tokens or 0
    response = jsonify({"object": "list", "data": data, "model": result.model,
                        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
    response.headers["X-Model"] = result.model
    if result.cost is not None:
        response.headers["X-Cost-USD"] = f"{result.cost:.10f}"
    return response


def _encoded(vector: list[float], encoding: str) -> Any:
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
