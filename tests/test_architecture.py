"""The layering rules of ARCHITECTURE.md, enforced: which package may import which, and no Flask below `api`."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = {"workflows", "comparison", "ab_testing", "monitoring"}
BASE = {"core", "storage", "models"}
ALLOWED = {
    "core": set(),
    "storage": {"core"},
    "models": {"core", "storage"},
    **{package: BASE for package in DOMAIN},
    "wiring": BASE | DOMAIN,
    "api": BASE | DOMAIN | {"wiring"},
}
# The only imports that point up, each inside a function so that importing the module stays cheap:
# - the default constructors reach the composition root, so `ModelRegistry()` is wired like the service;
# - the original's `storage.request_logger` keeps its path although the request log now lives in `models`.
UPWARD = {
    "models/defaults.py": {"wiring"},
    "storage/request_logger.py": {"models"},
}


def _imports(path: Path, *, outside_functions: bool = False) -> set[str]:
    """Top-level names of the modules `path` imports; with `outside_functions`, only those run at import time."""
    tree = ast.parse(path.read_text(), str(path))
    roots: list[ast.AST] = [tree]
    if outside_functions:
        roots = [stmt for stmt in tree.body if not isinstance(stmt, ast.FunctionDef | ast.ClassDef)]
    names: set[str] = set()
    for node in (node for root in roots for node in ast.walk(root)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _package_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_the_layering_allows(package):
    project = set(ALLOWED)
    offenders = set()
    for path in _package_files(package):
        exceptions = UPWARD.get(str(path.relative_to(ROOT)), set())
        for name in _imports(path) & project - {package} - ALLOWED[package]:
            if name not in exceptions:
                offenders.add(f"{path.relative_to(ROOT)} imports {name}")
    assert not offenders, sorted(offenders)


@pytest.mark.parametrize(("module", "upward"), sorted(UPWARD.items()))
def test_upward_imports_happen_only_inside_functions(module, upward):
    assert not _imports(ROOT / module, outside_functions=True) & upward


@pytest.mark.parametrize("package", sorted(set(ALLOWED) - {"api"}))
def test_no_flask_below_the_api_layer(package):
    offenders = [str(p.relative_to(ROOT)) for p in _package_files(package) if {"flask", "werkzeug"} & _imports(p)]
    assert not offenders


def test_only_the_settings_module_reads_the_environment():
    readers = []
    for package in ALLOWED:
        for path in _package_files(package):
            source = path.read_text()
            if ("os.environ" in source or "os.getenv" in source) and path != ROOT / "core" / "settings.py":
                readers.append(str(path.relative_to(ROOT)))
    assert not readers
