"""Workflow errors. Each carries a stable `code` and the HTTP status the API answers with."""

from __future__ import annotations

from typing import Any

from core.errors import AppError, ConflictError, InvalidInputError, NotFoundError
from models.prompts.errors import PromptError
from models.templating import TemplateRenderError


class WorkflowError(AppError):
    """Base class of the workflow errors."""

    code = "workflow_error"


class WorkflowValidationError(InvalidInputError, WorkflowError):
    """The definition, a template or the run's variables are invalid; raised before any model call."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        super().__init__(fields, prefix="Invalid workflow")


class UnknownTemplateError(InvalidInputError, WorkflowError):
    """No built-in template has that name: a 400, as the original answered."""

    def __init__(self, name: str, available: list[str]) -> None:
        super().__init__([{"field": "template", "reason": f"unknown template {name!r}; available: "
                                                          f"{', '.join(available)}"}],
                         prefix="Unknown template", code="unknown_template")
        self.details.update(template=name, available=available)


class WorkflowNotFoundError(NotFoundError, WorkflowError):
    code = "workflow_not_found"


class RunNotFoundError(NotFoundError, WorkflowError):
    code = "run_not_found"


class RunNotResumableError(ConflictError, WorkflowError):
    """Only failed or interrupted runs can be resumed."""

    code = "run_not_resumable"


class StepError(WorkflowError):
    """One attempt of a step failed (rendering, condition or output parsing); the error policy decides."""

    code = "step_error"
    http_status = 502


class OutputParseError(StepError):
    """The model's answer did not match the step's output parser."""

    code = "parse_error"


class ParserTimeoutError(OutputParseError):
    """The parser's pattern backtracked past its time limit: the caller's pattern, so a 400."""

    code = "pattern_timeout"
    http_status = 400


# What fails one attempt of a step before or after its call, for its error policy to handle: the step's own
# errors, its templates' (`render_error`, `template_limit`) and its registry prompt's (unknown, wrong variables).
STEP_FAILURES: tuple[type[AppError], ...] = (StepError, TemplateRenderError, PromptError)


class WorkflowStepFailedError(WorkflowError):
    """A step failed and its policy did not recover: the run is `failed`, completed steps are kept."""

    code = "workflow_step_failed"

    def __init__(self, run_id: str, step: str, reason: str, *, cause_code: str, http_status: int,
                 result: dict[str, Any] | None = None) -> None:
        super().__init__(f"Workflow run {run_id} failed at step {step!r}: {reason}", http_status=http_status,
                         details={"run_id": run_id, "step": step, "reason": reason, "cause": cause_code})
        self.run_id = run_id
        self.step = step
        self.reason = reason
        self.result = result
