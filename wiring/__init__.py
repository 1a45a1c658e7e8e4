"""The composition root: the one place that builds the product from `Settings`.

`create_app`, `main.py`, the `flask` CLI and the default constructors (`ModelRegistry()`, a standalone
`GeminiModel()`, `ExperimentManager()`, ...) all get their wiring here, so a hard budget holds for every
entry point alike.
"""

from wiring.runtime import Runtime, default_runtime, runtime_for
from wiring.services import Services, build_services

__all__ = ["Runtime", "Services", "build_services", "default_runtime", "runtime_for"]
