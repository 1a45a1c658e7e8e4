"""Workflow errors. Each carries a stable `code` and the HTTP status the API answers with."""

from __future__ import annotations

from typing import Any


class WorkflowError(Exception):
    """Base class; subclasses set `code` and `http_status`."""

    code = "workflow_error"
    http_status = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class WorkflowValidationError(WorkflowError):
    """The definition, a template or the run's variables are invalid; raised before any model call."""

    code = "validation_error"
    http_status = 400

    def __init__(self, fields: list[dict[str, str]]) -> None:
        summary = "; ".join(f"{f['field']}: {f['reason']}" for f in fields)
        super().__init__(f"Invalid workflow: {summary}", fields=fields)
        self.fields = fields

    @classmethod
    def single(cls, field: str, reason: str) -> WorkflowValidationError:
        return cls([{"field": field, "reason": reason}])


class UnknownTemplateError(WorkflowError):
    code = "unknown_template"
    http_status = 404


class WorkflowNotFoundError(WorkflowError):
    code = "workflow_not_found"
    http_status = 404


class RunNotFoundError(WorkflowError):
    code = "run_not_found"
    http_status = 404


class RunNotResumableError(WorkflowError):
    """Only failed or interrupted runs can be resumed."""

    code = "run_not_resumable"
    http_status = 409


class StepError(WorkflowError):
    """One attempt of a step failed (rendering, condition or output parsing); the error policy decides."""

    code = "step_error"
    http_status = 502


class OutputParseError(StepError):
    """The model's answer did not match the step's output parser."""

    code = "parse_error"


class TemplateRenderError(StepError):
    """A template or condition failed while rendering with the run's values."""

    code = "render_error"


class WorkflowStepFailedError(WorkflowError):
    """A step failed and its policy did not recover: the run is `failed`, completed steps are kept."""

    code = "workflow_step_failed"

    def __init__(self, run_id: str, step: str, reason: str, *, cause_code: str, http_status: int,
                 result: dict[str, Any] | None = None) -> None:
        super().__init__(f"Workflow run {run_id} failed at step {step!r}: {reason}",
                         run_id=run_id, step=step, reason=reason, cause=cause_code)
        self.run_id = run_id
        self.step = step
        self.reason = reason
        self.http_status = http_status
        self.result = result
