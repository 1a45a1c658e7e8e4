"""Refuse, before any view runs, values that no endpoint can store or forward, wherever they are sent.

The JSON body, the query string and the path are checked: JSON nested deeper than MAX_JSON_DEPTH (deeper
values exhaust Python's recursion in parsing, validation or storage), NUL characters (PostgreSQL text
cannot hold them), lone surrogates (not UTF-8, so no provider, log or database accepts them), and NaN or
Infinity (not JSON). Each refusal is a 400 `validation_error` naming the field, before any provider call.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterator
from itertools import chain, islice
from typing import Any

from flask import Flask, request

from core.errors import InvalidInputError

MAX_JSON_DEPTH = 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
BODY = "(body)"


def text_problem(text: str) -> str | None:
    """Why `text` cannot be stored or forwarded, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "contains a NUL character" if found.group() == "\x00" else "contains a lone surrogate (not valid Unicode)"


def _field(*parts: str) -> str:
    """A field name fit to echo back: refused characters become U+FFFD."""
    return _UNSTORABLE.sub("\ufffd", ".".join(parts)) or BODY


def json_problems(payload: Any) -> Iterator[tuple[str, str]]:
    """(field, reason) for each unacceptable value in a parsed JSON body, walked breadth-first without recursion."""
    queue: deque[tuple[Any, tuple[str, ...]]] = deque([(payload, ())])
    while queue:
        value, path = queue.popleft()
        if not isinstance(value, dict | list):
            if reason := _scalar_problem(value):
                yield _field(*path), reason
        elif len(path) >= MAX_JSON_DEPTH:
            yield _field(*path[:1]), f"nested deeper than {MAX_JSON_DEPTH} levels"
        else:
            for key, item in value.items() if isinstance(value, dict) else enumerate(value):
                where = (*path, str(key))
                if isinstance(key, str) and (reason := text_problem(key)):
                    yield _field(*where), f"the key {reason}"
                queue.append((item, where))


def _scalar_problem(value: Any) -> str | None:
    if isinstance(value, str):
        return text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN and Infinity are not JSON numbers"
    return None


def _parameter_problems() -> Iterator[tuple[str, str]]:
    for name, value in (request.view_args or {}).items():
        if isinstance(value, str) and (reason := text_problem(value)):
            yield _field(name), reason
    for name, values in request.args.lists():
        for text in (name, *values):
            if reason := text_problem(text):
                yield _field(name), reason


def _body_problems() -> Iterator[tuple[str, str]]:
    if not request.is_json:
        return
    try:
        payload = request.get_json(silent=True)  # parsed once; the view reads the cached value
    except RecursionError:
        yield BODY, f"nested deeper than {MAX_JSON_DEPTH} levels"
        return
    yield from json_problems(payload)


def check_request() -> None:
    """Raise a 400 naming the refused fields (the first ten)."""
    found = islice(chain(_parameter_problems(), _body_problems()), 10)
    problems = [{"field": field, "reason": reason} for field, reason in found]
    if problems:
        raise InvalidInputError(problems)


def register_input_guard(app: Flask) -> None:
    app.before_request(check_request)
