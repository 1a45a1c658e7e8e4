"""Azure OpenAI: OpenAI's chat-completions wire format behind Azure's URL layout and key header.

A call goes to `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...` with the key in
the `api-key` header; the SDK's `AzureOpenAI` client builds both. Everything else (request body, streaming,
usage, retries, error mapping, key redaction) is `OpenAICompatibleModel`'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from models.openai_compatible import OpenAICompatibleModel

if TYPE_CHECKING:
    import openai


class AzureOpenAIModel(OpenAICompatibleModel):
    """A deployment of an Azure OpenAI resource; `base_url` is the resource endpoint
    (`https://<resource>.openai.azure.com`), `model` the OpenAI model it serves (default: the deployment's name)."""

    provider = "azure_openai"

    def __init__(self, name: str, *, base_url: str, deployment: str, api_version: str, model: str | None = None,
                 **options: Any) -> None:
        """`options` are `OpenAICompatibleModel`'s (key, pricing, timeouts, limits)."""
        super().__init__(name, base_url=base_url, model=model or deployment, **options)
        self.deployment = deployment
        self.api_version = api_version

    def _new_client(self, options: dict[str, Any]) -> openai.OpenAI:
        import openai

        return openai.AzureOpenAI(azure_endpoint=self.base_url, azure_deployment=self.deployment,
                                  api_version=self.api_version, **options)
