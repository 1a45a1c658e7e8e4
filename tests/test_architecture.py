"""The layering rules of ARCHITECTURE.md, enforced: which package may import which, and no Flask below `api`."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = {"workflows", "comparison", "ab_testing", "monitoring"}
ALLOWED = {
    "storage": set(),
    "models": {"storage"},
    **{package: {"models", "storage"} for package in DOMAIN},
    "api": {"models", "storage", *DOMAIN},
}


def _imports(path: Path) -> set[str]:
    """Top-level names of every module `path` imports, including imports inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
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
    offenders = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _package_files(package)
        for name in _imports(path) & project
        if name != package and name not in ALLOWED[package]
    }
    assert not offenders, sorted(offenders)


@pytest.mark.parametrize("package", sorted(set(ALLOWED) - {"api"}))
def test_no_flask_below_the_api_layer(package):
    offenders = [str(p.relative_to(ROOT)) for p in _package_files(package) if {"flask", "werkzeug"} & _imports(p)]
    assert not offenders


def test_only_the_settings_module_reads_the_environment():
    readers = []
    for package in ALLOWED:
        for path in _package_files(package):
            source = path.read_text()
            if ("os.environ" in source or "os.getenv" in source) and path != ROOT / "storage" / "settings.py":
                readers.append(str(path.relative_to(ROOT)))
    assert not readers
