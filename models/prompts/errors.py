"""Prompt registry errors: an unknown prompt, label or version is a 404; wrong variables a 400 naming them."""

from __future__ import annotations

from core.errors import AppError, InvalidInputError, NotFoundError


class PromptError(AppError):
    """Base class: what a call naming a prompt can fail with before any model is called."""

    code = "prompt_error"


class PromptNotFoundError(NotFoundError, PromptError):
    code = "prompt_not_found"


class PromptVariablesError(InvalidInputError, PromptError):
    """Variables the version does not declare, or declared ones the call did not give."""

    def __init__(self, fields: list[dict[str, str]]) -> None:
        super().__init__(fields, prefix="Wrong prompt variables", code="prompt_variables")
