"""Active health probes: a 1-token call to every model a group routes to, so that health and breakers follow a
deployment even when no client calls it (a breaker cooled down closes on a probe, not on a client's call)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from models.errors import ModelError
from models.routing.group import ModelGroup

if TYPE_CHECKING:
    from models.model_registry import ModelRegistry

log = logging.getLogger(__name__)

PROBE_PROMPT = "ping"


class HealthProbes:
    """Each `probe()` calls every group member once, on the managed path (recorded with source `probe`)."""

    def __init__(self, registry: ModelRegistry) -> None:
        self.registry = registry

    def targets(self) -> list[str]:
        groups = [model for model in self.registry.models.values() if isinstance(model, ModelGroup)]
        return sorted({member.name for group in groups for member in group.members() if member.capabilities.chat})

    def probe(self) -> dict[str, str]:
        """Each target's outcome: `success`, or the error code (`circuit_open` while its breaker cools down)."""
        outcomes = {}
        for name in self.targets():
            try:
                self.registry.require_model(name).generate(PROBE_PROMPT, max_tokens=1, source="probe")
                outcomes[name] = "success"
            except ModelError as error:
                outcomes[name] = error.code
                log.info("Health probe of %s failed: %s", name, error.code)
        return outcomes
