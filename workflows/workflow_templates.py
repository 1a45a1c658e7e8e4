"""Pre-built workflows: the three original chains plus examples of parallel groups, JSON parsing and conditions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from workflows.errors import UnknownTemplateError

Steps = list[dict[str, Any]]

_TRIAGE_SCHEMA = {
    "type": "object",
    "required": ["sentiment", "urgent", "topic"],
    "properties": {
        "sentiment": {"enum": ["positive", "neutral", "negative"]},
        "urgent": {"type": "boolean"},
        "topic": {"type": "string"},
    },
}


class WorkflowTemplates:
    """Each template is a function of the model name returning the steps, as in the original."""

    @staticmethod
    def content_generation_workflow(model_name: str | None) -> Steps:
        """Content generation: draft -> improve -> format."""
        return [
            {"name": "draft", "model": model_name, "prompt_template": "Generate a short article about: {input}"},
            {"name": "improve", "model": model_name,
             "prompt_template": "Improve the following article by making it more engaging:\n\n{input}"},
            {"name": "format", "model": model_name,
             "prompt_template": "Format the following article with proper headings and structure:\n\n{input}"},
        ]

    @staticmethod
    def translation_workflow(model_name: str | None) -> Steps:
        """Translation: translate -> review -> polish, into Spanish as originally."""
        return [
            {"name": "translate", "model": model_name,
             "prompt_template": "Translate the following text to Spanish:\n\n{input}"},
            {"name": "review", "model": model_name,
             "prompt_template": "Review this Spanish translation and fix any errors:\n\n{input}"},
            {"name": "polish", "model": model_name,
             "prompt_template": "Polish this Spanish text to make it sound more natural:\n\n{input}"},
        ]

    @staticmethod
    def analysis_workflow(model_name: str | None) -> Steps:
        """Analysis: extract -> summarize -> report."""
        return [
            {"name": "extract", "model": model_name,
             "prompt_template": "Extract the key points from the following text:\n\n{input}"},
            {"name": "summarize", "model": model_name,
             "prompt_template": "Summarize these key points in 2-3 sentences:\n\n{input}"},
            {"name": "report", "model": model_name,
             "prompt_template": "Create a brief report based on this summary:\n\n{input}"},
        ]

    @staticmethod
    def perspectives_workflow(model_name: str | None) -> Steps:
        """Pros, cons and risks in one parallel group, then a synthesis that reads all three."""
        group = [
            {"name": name, "group": "perspectives", "model": model_name, "prompt_template": prompt}
            for name, prompt in (
                ("pros", "List the strongest arguments for: {input}"),
                ("cons", "List the strongest arguments against: {input}"),
                ("risks", "List the main risks of: {input}"),
            )
        ]
        synthesis = (
            "Write a balanced recommendation about {{ workflow_input }}.\n\nFor:\n{{ steps.pros.output }}\n\n"
            "Against:\n{{ steps.cons.output }}\n\nRisks:\n{{ steps.risks.output }}"
        )
        return [*group, {"name": "synthesis", "model": model_name, "prompt_template": synthesis}]

    @staticmethod
    def ticket_triage_workflow(model_name: str | None) -> Steps:
        """Classify a ticket as JSON (schema-checked, retried once), escalate only when needed, then reply."""
        classify = (
            "Classify this support ticket. Answer only with JSON like "
            '{"sentiment": "positive|neutral|negative", "urgent": true, "topic": "billing"}.\n\n'
            "Ticket:\n{{ input }}"
        )
        return [
            {"name": "classify", "model": model_name, "prompt_template": classify,
             "parser": {"type": "json", "schema": _TRIAGE_SCHEMA}, "on_error": {"action": "retry", "retries": 1}},
            {"name": "escalate", "model": model_name,
             "when": "steps.classify.parsed.urgent or steps.classify.parsed.sentiment == 'negative'",
             "prompt_template": "Write a short escalation note for the on-call lead about this "
                                "{{ steps.classify.parsed.topic }} ticket:\n\n{{ workflow_input }}",
             "on_error": {"action": "continue", "default": "(escalation note unavailable)"}},
            {"name": "reply", "model": model_name,
             "prompt_template": "Write a polite reply to this {{ steps.classify.parsed.topic }} ticket:\n\n"
                                "{{ workflow_input }}"},
        ]

    @staticmethod
    def get_all_templates() -> dict[str, str]:
        """Template name -> description."""
        return {name: description for name, (description, _builder) in _TEMPLATES.items()}

    @staticmethod
    def get_template(name: str, model_name: str | None = None) -> dict[str, Any]:
        """The template as a workflow definition (name, description, model, steps)."""
        if name not in _TEMPLATES:
            raise UnknownTemplateError(name, list(_TEMPLATES))
        description, builder = _TEMPLATES[name]
        return {"name": name, "description": description, "model": model_name, "steps": builder(model_name)}


_TEMPLATES: dict[str, tuple[str, Callable[[str | None], Steps]]] = {
    "content_generation": ("Generate, improve, and format content", WorkflowTemplates.content_generation_workflow),
    "translation": ("Translate, review, and polish text", WorkflowTemplates.translation_workflow),
    "analysis": ("Extract, summarize, and report on text", WorkflowTemplates.analysis_workflow),
    "perspectives": ("Pros, cons and risks in parallel, then a balanced synthesis",
                     WorkflowTemplates.perspectives_workflow),
    "ticket_triage": ("Classify a ticket as JSON, escalate when urgent or negative, then draft a reply",
                      WorkflowTemplates.ticket_triage_workflow),
}
