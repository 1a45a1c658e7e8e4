"""The one error base: every error the product raises on purpose carries a stable code, an HTTP status,
a message and details, so one Flask handler answers them all and library callers can branch on `code`."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    """Base class; subclasses set `code` and `http_status` (an instance may override either)."""

    code = "error"
    http_status = 500

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: {"error": {"code", "message", "details"?}}."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details:
            error["details"] = self.details
        return {"error": error}


class InvalidInputError(AppError, ValueError):
    """The caller sent something invalid; `details.fields` names each field and the reason.

    A `ValueError` too, so library callers that catch `ValueError` keep working.
    """

    code = "validation_error"
    http_status = 400

    def __init__(self, fields: list[dict[str, str]], *, prefix: str = "Invalid request",
                 code: str | None = None) -> None:
        summary = "; ".join(f"{f['field']}: {f['reason']}" for f in fields)
        super().__init__(f"{prefix}: {summary}", details={"fields": fields}, code=code)
        self.fields = fields

    @classmethod
    def single(cls, field: str, reason: str, **kwargs: Any) -> InvalidInputError:
        return cls([{"field": field, "reason": reason}], **kwargs)


class NotFoundError(AppError, LookupError):
    """A named resource does not exist."""

    code = "not_found"
    http_status = 404


class ConflictError(AppError):
    """The request clashes with the resource's current state (a taken name, a finished run)."""

    code = "conflict"
    http_status = 409


def validation_fields(exc: Any, prefix: str = "") -> list[dict[str, str]]:
    """A pydantic `ValidationError` as [{field, reason}], fields dotted and prefixed (e.g. `params.`)."""
    return [{"field": prefix + (".".join(str(part) for part in err["loc"]) or "(body)"), "reason": err["msg"]}
            for err in exc.errors(include_url=False)]
