"""Templates, sandboxing, conditions and output parsers of workflows (pure functions, no database)."""

from __future__ import annotations

import sys

import pytest

from models.templating import TemplateLimitError, TemplateRenderError, render, to_jinja
from workflows import parsers
from workflows.conditions import analyze_expression, evaluate
from workflows.definitions import check_definition, check_variables, load_definition
from workflows.errors import OutputParseError, ParserTimeoutError, WorkflowValidationError
from workflows.templating import analyze_template

PAYLOADS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ input['__class__'] }}",
    "{{ input|attr('__class__') }}",
    "{{ cycler.__init__.__globals__.os }}",
    "{{ steps.draft.output.__class__ }}",
]


def _definition(*steps: dict) -> dict:
    return {"name": "wf", "steps": list(steps)}


def test_original_single_brace_style_becomes_jinja() -> None:
    assert to_jinja("About: {input}") == "About: {{ input }}"
    assert to_jinja("Use {steps.draft.output} and {tone}") == "Use {{ steps.draft.output }} and {{ tone }}"
    assert to_jinja('Reply as JSON like {"a": 1}: {input}') == 'Reply as JSON like {"a": 1}: {{ input }}'
    assert to_jinja("{{ input }} {x} {% if y %}{z}{% endif %}") == "{{ input }} {{ x }} {% if y %}{{ z }}{% endif %}"
    assert to_jinja("{{ {'a': 1}['a'] }} {# {note} #}") == "{{ {'a': 1}['a'] }} {# {note} #}"


def test_render_reads_input_steps_and_variables() -> None:
    context = {"input": "prev", "workflow_input": "first", "steps": {"draft": {"output": "D"}}, "tone": "dry"}
    assert render("{input} | {workflow_input} | {steps.draft.output} | {tone}", context) == "prev | first | D | dry"
    assert render("{{ input }} | {{ steps['draft'].output }} | {{ tone|upper }}", context) == "prev | D | DRY"


@pytest.mark.parametrize("payload", PAYLOADS)
def test_python_internals_are_refused_when_checked(payload: str) -> None:
    definition = load_definition(_definition({"name": "draft", "prompt": "x"}, {"prompt_template": payload}))
    with pytest.raises(WorkflowValidationError) as info:
        check_definition(definition)
    assert info.value.fields[0]["field"] == "steps.1.prompt_template"
    assert info.value.fields[0]["reason"].startswith("refused")


def test_sandbox_refuses_internals_reached_dynamically_at_render_time() -> None:
    key = "__" + "class" + "__"
    with pytest.raises(TemplateRenderError, match="unsafe|not safely accessible|undefined"):
        render("{{ input[key] }}", {"input": "text", "key": key})
    with pytest.raises(TemplateRenderError):
        render("{{ 'a' * 10000000 }}", {})


def test_missing_variable_is_a_validation_error_naming_the_field() -> None:
    definition = load_definition(_definition({"prompt": "Write in {tone}: {input}"}))
    with pytest.raises(WorkflowValidationError) as info:
        check_variables(definition, {})
    assert info.value.fields == [{"field": "steps.0.prompt_template", "reason": "missing variable 'tone'"}]
    check_variables(definition, {"tone": "formal"})


def test_reserved_names_cannot_be_variables() -> None:
    definition = load_definition(_definition({"prompt": "{input}"}))
    with pytest.raises(WorkflowValidationError, match="reserved"):
        check_variables(definition, {"input": "x"})


def test_references_to_later_or_same_group_steps_are_rejected() -> None:
    later = load_definition(_definition({"name": "a", "prompt": "{steps.b.output}"}, {"name": "b", "prompt": "x"}))
    with pytest.raises(WorkflowValidationError, match="not an earlier step"):
        check_definition(later)
    same_group = load_definition(_definition({"name": "a", "group": "g", "prompt": "x"},
                                             {"name": "b", "group": "g", "prompt": "{{ steps.a.output }}"}))
    with pytest.raises(WorkflowValidationError, match="steps.1.prompt_template"):
        check_definition(same_group)


def test_duplicate_names_and_split_groups_are_rejected() -> None:
    with pytest.raises(WorkflowValidationError, match="duplicate step name"):
        check_definition(load_definition(_definition({"name": "a", "prompt": "x"}, {"name": "a", "prompt": "y"})))
    split = _definition({"group": "g", "prompt": "x"}, {"prompt": "y"}, {"group": "g", "prompt": "z"})
    with pytest.raises(WorkflowValidationError, match="consecutive"):
        check_definition(load_definition(split))


def test_structural_errors_name_the_field() -> None:
    with pytest.raises(WorkflowValidationError) as info:
        load_definition(_definition({"prompt": "x", "parser": {"type": "regex", "pattern": "(?P<a>x)("}}))
    assert info.value.fields[0]["field"] == "steps.0.parser.pattern"
    with pytest.raises(WorkflowValidationError) as info:
        load_definition(_definition({"prompt": "x", "on_error": {"action": "fallback"}}))
    assert info.value.fields[0]["field"] == "steps.0.on_error"
    assert "fallback_model" in info.value.fields[0]["reason"]


def test_conditions_evaluate_safely() -> None:
    context = {"steps": {"c": {"parsed": {"urgent": False, "score": 7}, "output": "x"}}}
    assert evaluate("steps.c.parsed.score > 5 and not steps.c.parsed.urgent", context) is True
    assert evaluate("steps.c.parsed.score > 9", context) is False
    assert analyze_expression("steps.c.output == 'x'").steps == {"c"}
    assert analyze_expression("flag").names == {"flag"}
    with pytest.raises(TemplateRenderError):
        evaluate("steps.c.parsed.missing", context)
    definition = load_definition(_definition({"name": "c", "prompt": "x"},
                                             {"prompt": "y", "when": "steps.c.__class__"}))
    with pytest.raises(WorkflowValidationError, match="refused"):
        check_definition(definition)


def test_template_syntax_errors_are_validation_errors() -> None:
    with pytest.raises(WorkflowValidationError, match="syntax error"):
        check_definition(load_definition(_definition({"prompt": "{{ input "})))
    assert analyze_template("{% for w in input.split() %}{{ w }}{% endfor %}").names == {"input"}


def test_json_parser_extracts_first_object_or_array_and_checks_schema() -> None:
    parsed = parsers.parse_json('Sure! ```json\n{"a": [1, 2], "b": "x"}\n``` and [3]')
    assert parsed.parsed == {"a": [1, 2], "b": "x"}
    assert parsers.parse_json("list: [1, 2] {").parsed == [1, 2]
    schema = {"type": "object", "required": ["b"], "properties": {"b": {"type": "integer"}}}
    with pytest.raises(OutputParseError, match="schema at b"):
        parsers.parse_json('{"b": "x"}', schema)
    with pytest.raises(OutputParseError, match="no JSON"):
        parsers.parse_json("{not json} at all")


def test_regex_parser_returns_the_named_group() -> None:
    assert parsers.parse_regex("Score: 8/10", r"Score: (?P<score>\d+)", "score").output == "8"
    with pytest.raises(OutputParseError):
        parsers.parse_regex("nothing", r"Score: (?P<score>\d+)", "score")
    with pytest.raises(ValueError, match="named group"):
        parsers.check_pattern(r"(\d+)", None)
    with pytest.raises(ValueError, match="invalid JSON Schema"):
        parsers.check_schema({"type": "no-such-type"})


def test_regex_parser_stops_a_catastrophic_pattern_at_the_time_limit() -> None:
    assert parsers.parse_regex("a" * 31 + "!", r"(?P<a>(a+)+)!$").output == "a" * 31  # no backtracking blow-up
    with pytest.raises(ParserTimeoutError) as info:
        parsers.parse_regex("a" * 5000 + "!", r"(?P<a>(a|aa)+)$")
    assert info.value.http_status == 400 and info.value.code == "pattern_timeout"


@pytest.mark.parametrize(("template", "expected"), [
    ("{{ words|join(', ') }}", "a, b, c"),
    ("{{ items|join('-', attribute='n') }}", "1-2"),
    ("{{ 'aa bb\ncc'|wordwrap(2, wrapstring=' / ') }}", "aa / bb / cc"),
    ("{{ 'a-b'|replace('-', '+') }}", "a+b"),
    ("{{ '%-4s|%03d'|format('x', 7) }}", "x   |007"),
    ("{{ 'x'|center(5) }}|{{ 'a\nb'|indent(2, first=true) }}", "  x  |  a\n  b"),
    ("{{ [1, 2] + [3] }} {{ 'ab' * 2 }} {{ 2 ** 10 }} {{ '%s!' % input }} {{ input ~ '?' }}",
     "[1, 2, 3] abab 1024 hi! hi?"),
    ("{{ words|batch(2)|list }} {{ [1, 2, 3]|sum }} {{ {'k': 'v'}|tojson }}", '[[\'a\', \'b\'], [\'c\']] 6 {"k": "v"}'),
    ("{% macro twice(x) %}{{ x }}{{ x }}{% endmacro %}{{ twice(input) }}", "hihi"),
])
def test_bounded_filters_and_operators_render_as_jinja_does(template: str, expected: str) -> None:
    context = {"input": "hi", "words": ["a", "b", "c"], "items": [{"n": 1}, {"n": 2}]}
    assert render(template, context) == expected


def test_the_render_deadline_leaves_an_outer_tracer_in_place() -> None:
    def outer(frame, event, arg):
        return None

    sys.settrace(outer)
    try:
        with pytest.raises(TemplateLimitError, match="longer than"):
            render("{% for a in input %}{% for b in input %}{% endfor %}{% endfor %}", {"input": "x" * 100_000})
        assert sys.gettrace() is outer
    finally:
        sys.settrace(None)
