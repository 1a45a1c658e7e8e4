"""Models written for the original `BaseModel` run on the managed path like every other model.

The original contract: a subclass implements `generate(prompt, **kwargs)`, returning
`{'response', 'tokens', 'latency', 'cost'}` (or just the text), and `generate_stream(prompt, **kwargs)`, yielding
text. A subclass that implements either of them but no `execute` is adapted when the class is created: its own
methods become the provider call behind `execute`, and `generate` / `generate_stream` are the managed ones again.
So each of its calls is recorded once in the request log, with the tokens and cost the subclass reported.

While the model's own code runs, its `generate` / `generate_stream` are its own again, so a subclass that wraps
`super().generate(...)`, or a stream built on `self.generate(...)`, is still one recorded call.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, cast

from core.errors import InvalidInputError
from models.messages import GenerationRequest
from models.results import Usage

ORIGINAL_METHODS = ("generate", "generate_stream")
# The models whose own code runs in this thread (or task), by id: their calls inside it are not managed again.
_running: ContextVar[frozenset[int]] = ContextVar("original_style_running", default=frozenset())
_END = object()


def needs_adapting(cls: type) -> bool:
    """True for a class that implements the original methods itself and has no provider call of its own."""
    execute = getattr(cls, "execute", None)
    inherited_call = execute is execute_original or getattr(execute, "__isabstractmethod__", False)
    return any(name in cls.__dict__ for name in ORIGINAL_METHODS) and "execute" not in cls.__dict__ and inherited_call


def adapt(cls: Any, managed: Mapping[str, Callable[..., Any]], capabilities: Any) -> None:
    """Move the class's own `generate` / `generate_stream` behind `execute`; `managed` are the managed methods.

    Token counting becomes the original estimate unless the class counts itself, and `capabilities` (a single
    prompt, an estimated count) apply unless the class declares its own.
    """
    for name in ORIGINAL_METHODS:
        if name in cls.__dict__:
            own = cls.__dict__[name]
            setattr(cls, f"_original_{name}", own)
            setattr(cls, name, _entry_point(own, managed[name]))
    cls.execute = execute_original
    if getattr(cls.count_tokens, "__isabstractmethod__", False):
        cls.count_tokens = estimate_tokens
    if "capabilities" not in cls.__dict__:
        cls.capabilities = capabilities


def _entry_point(own: Callable[..., Any], managed: Callable[..., Any]) -> Callable[..., Any]:
    """The method callers see: the managed call, or the class's own method while the model's own code runs."""
    @functools.wraps(own)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return (own if id(self) in _running.get() else managed)(self, *args, **kwargs)

    return method


@contextmanager
def _own_code(model: Any) -> Iterator[None]:
    token = _running.set(_running.get() | {id(model)})
    try:
        yield
    finally:
        _running.reset(token)


def _chunks_of_own_code(model: Any, chunks: Iterator[str]) -> Iterator[str]:
    """The model's own stream, marked as its own code only while it computes each chunk."""
    while True:
        with _own_code(model):
            chunk = next(chunks, _END)
        if chunk is _END:
            return
        yield cast(str, chunk)


def estimate_tokens(self: Any, text: str) -> int:
    """The original approximation: one token per four characters."""
    return len(text) // 4


def execute_original(self: Any, request: GenerationRequest, usage: Usage) -> Iterator[str]:
    """The provider call of an original-style model: its own `generate` (or `generate_stream` when streaming)."""
    if len(request.messages) != 1:
        raise InvalidInputError.single(
            "messages", f"{self.name} takes a single prompt: it implements the original generate(prompt)")
    kwargs = request.params.given()
    own_generate = getattr(self, "_original_generate", None)
    own_stream = getattr(self, "_original_generate_stream", None)
    if own_generate is None or (request.stream and own_stream is not None):
        assert own_stream is not None, "the adapter wraps classes that define generate or generate_stream"
        with _own_code(self):
            chunks = iter(own_stream(request.prompt, **kwargs))
        yield from _chunks_of_own_code(self, chunks)
        return
    with _own_code(self):
        answer = own_generate(request.prompt, **kwargs)
    text = read_answer(answer, usage)
    if text:
        yield text


def read_answer(answer: Any, usage: Usage) -> str:
    """The text of an original answer; its `tokens` and `cost`, when it reports them, go to `usage`."""
    if not isinstance(answer, Mapping):
        return "" if answer is None else str(answer)
    tokens, cost = answer.get("tokens"), answer.get("cost")
    if isinstance(tokens, int):
        usage.set(total=tokens)
    if isinstance(cost, int | float):
        usage.cost = float(cost)
    return str(answer.get("response") or "")
