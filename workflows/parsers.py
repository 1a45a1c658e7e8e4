"""Output parsers: turn a model's answer into the step's output (`text`, `json` with a schema, `regex`)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from core.patterns import Pattern, PatternTimeoutError
from workflows.errors import OutputParseError, ParserTimeoutError

_decoder = json.JSONDecoder()


@dataclass(frozen=True)
class ParsedOutput:
    """`output` is the text later steps read as `{input}`; `parsed` the structured value (json/regex)."""

    output: str
    parsed: Any = None


def check_schema(schema: dict[str, Any]) -> None:
    """Raise ValueError when `schema` is not a valid JSON Schema."""
    validator_cls = _validator_for(schema)
    try:
        validator_cls.check_schema(schema)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON Schema: {exc.message}") from None


def check_pattern(pattern: str, group: str | None) -> None:
    """Raise ValueError unless `pattern` compiles and has the named group (or exactly one group) used."""
    compiled = Pattern(pattern)
    if group is not None and group not in compiled.groupindex:
        raise ValueError(f"the pattern has no named group {group!r}")
    if group is None and len(compiled.groupindex) != 1:
        raise ValueError("name the group to extract with `group` (the pattern needs exactly one named group)")


def parse_text(text: str) -> ParsedOutput:
    return ParsedOutput(output=text)


def parse_json(text: str, schema: dict[str, Any] | None = None) -> ParsedOutput:
    """Extract the first JSON object or array in `text` and validate it against `schema`."""
    value = _first_json(text)
    if schema is not None:
        errors = sorted(_validator_for(schema)(schema).iter_errors(value), key=lambda e: list(e.path))
        if errors:
            where = "/".join(str(p) for p in errors[0].path) or "(root)"
            raise OutputParseError(f"JSON output does not match the schema at {where}: {errors[0].message}")
    return ParsedOutput(output=json.dumps(value, ensure_ascii=False), parsed=value)


def parse_regex(text: str, pattern: str, group: str | None = None) -> ParsedOutput:
    """The named group of the first match of `pattern`, searched under the patterns' time limit."""
    compiled = Pattern(pattern)
    try:
        match = compiled.search(text)
    except PatternTimeoutError as exc:
        raise ParserTimeoutError(str(exc)) from None
    if match is None:
        raise OutputParseError(f"the output does not match the pattern {pattern!r}")
    name = group or next(iter(compiled.groupindex))
    value = match.group(name)
    if value is None:
        raise OutputParseError(f"the group {name!r} did not match")
    return ParsedOutput(output=value, parsed=value)


def _first_json(text: str) -> Any:
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _end = _decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        return value
    raise OutputParseError("the output contains no JSON object or array")


def _validator_for(schema: dict[str, Any]) -> Any:
    return validator_for(schema, default=Draft202012Validator)
