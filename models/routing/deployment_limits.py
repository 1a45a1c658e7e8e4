"""A deployment's `rpm` and `tpm` in its group: counted per clock minute in the database, so every worker and
host shares them; a deployment whose minute is used up is skipped."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from models.errors import CallRefusedError
from models.routing.strategies import Deployment
from storage.clock import utcnow
from storage.minute_usage import MinuteUsage, MinuteWindow, deployment_subject


class DeploymentsBusyError(CallRefusedError):
    """Every deployment a group could use has reached its per-minute limits; `retry_after` says when they reset."""

    code = "rate_limited"
    http_status = 429


class DeploymentLimits:
    """Admits a call to a deployment within its `rpm` and `tpm`; deployments without limits cost nothing here."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.usage = MinuteUsage(engine)
        self.clock = clock

    def admit(self, deployment: Deployment) -> bool:
        """Count one call against the deployment's current minute; False (and nothing counted) when it is full."""
        if deployment.rpm is None and deployment.tpm is None:
            return True
        window = MinuteWindow.at(self.clock())
        refused = self.usage.admit(deployment_subject(deployment.name), window, rpm=deployment.rpm,
                                   tpm=deployment.tpm)
        return refused is None

    def add_tokens(self, deployment: Deployment, tokens: int | None) -> None:
        if deployment.tpm is not None and tokens:
            self.usage.add_tokens(deployment_subject(deployment.name), MinuteWindow.at(self.clock()), tokens)

    def busy_error(self, group: str) -> DeploymentsBusyError:
        retry_after = MinuteWindow.at(self.clock()).retry_after
        return DeploymentsBusyError(
            f"Every deployment of {group!r} has used its calls or tokens of this minute; retry in {retry_after} s",
            details={"model": group, "retry_after": retry_after})
