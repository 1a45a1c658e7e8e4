"""Errors of the experiment service; each has a stable code and the HTTP status the API answers with."""

from __future__ import annotations

from models.errors import ModelError


class ExperimentError(ModelError):
    """Base class of experiment errors."""

    code = "experiment_error"
    http_status = 400


class ExperimentNotFoundError(ExperimentError):
    code = "experiment_not_found"
    http_status = 404

    @classmethod
    def for_id(cls, experiment_id: int) -> ExperimentNotFoundError:
        return cls(f"Experiment {experiment_id} not found", details={"experiment_id": experiment_id})


class ExposureNotFoundError(ExperimentError):
    """Feedback names a call that no experiment served."""

    code = "exposure_not_found"
    http_status = 404

    def __init__(self, request_id: str) -> None:
        super().__init__(f"No experiment served the call {request_id!r}", details={"request_id": request_id})


class UnknownVariantError(ExperimentError):
    code = "unknown_variant"
    http_status = 404


class ExperimentNotRunningError(ExperimentError):
    """Results and traffic are accepted only while the experiment runs."""

    code = "experiment_not_running"
    http_status = 409


class InvalidTransitionError(ExperimentError):
    """The lifecycle is draft -> running <-> paused -> completed; anything else is refused."""

    code = "invalid_transition"
    http_status = 409


class InvalidExperimentError(ExperimentError):
    """A definition or outcome that does not validate; the message names the field."""

    code = "invalid_experiment"
    http_status = 400
