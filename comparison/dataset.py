"""Benchmark datasets: JSONL, one item per line with an id, a task, a prompt, an optional reference and scorers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from comparison.errors import InvalidDatasetError, InvalidScorerError
from comparison.scorers import build_reference_scorer

BUILTIN_DATASET = Path(__file__).resolve().parent / "datasets" / "builtin.jsonl"
BUILTIN_NAME: Final = "builtin"


@dataclass(frozen=True)
class BenchmarkItem:
    """One prompt of a dataset; an item is answered correctly when every one of its scorers passes."""

    id: str
    prompt: str
    task: str = "general"
    reference: str | None = None
    system: str | None = None
    scorers: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Dataset:
    name: str
    items: list[BenchmarkItem]

    def select(self, *, tasks: Sequence[str] | None = None, limit: int | None = None) -> Dataset:
        """The items of the given tasks, at most `limit` of them, in file order."""
        items = [i for i in self.items if not tasks or i.task in tasks]
        if not items:
            raise InvalidDatasetError(f"No items in dataset {self.name!r} for tasks {list(tasks or [])}")
        return Dataset(self.name, items[:limit] if limit else items)


def parse_dataset(lines: Iterable[str], name: str) -> Dataset:
    """Parse and validate JSONL, naming the line of the first problem."""
    items: list[BenchmarkItem] = []
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = _parse_item(line, number)
        if item.id in seen:
            raise InvalidDatasetError(f"Line {number}: duplicate item id {item.id!r}")
        seen.add(item.id)
        items.append(item)
    if not items:
        raise InvalidDatasetError(f"Dataset {name!r} has no items")
    return Dataset(name, items)


def _parse_item(line: str, number: int) -> BenchmarkItem:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidDatasetError(f"Line {number}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, dict) or not isinstance(data.get("prompt"), str) or not data["prompt"].strip():
        raise InvalidDatasetError(f"Line {number}: each item needs a non-empty 'prompt'")
    scorers = data.get("scorers")
    if scorers is None:
        scorers = [{"type": "contains"}] if data.get("reference") else []
    if not isinstance(scorers, list):
        raise InvalidDatasetError(f"Line {number}: 'scorers' must be a list")
    item = BenchmarkItem(
        id=str(data.get("id", f"item-{number}")), prompt=data["prompt"], task=str(data.get("task", "general")),
        reference=data.get("reference"), system=data.get("system"), scorers=scorers,
    )
    for spec in scorers:
        if not isinstance(spec, dict):
            raise InvalidDatasetError(f"Line {number}: each scorer must be an object with a 'type'")
        try:
            build_reference_scorer(spec, item.reference)
        except InvalidScorerError as exc:
            raise InvalidDatasetError(f"Line {number}: {exc.message}") from None
    return item


def load_dataset(path: str | Path | None = None) -> Dataset:
    """The dataset at `path`, or the built-in one (23 items: QA, extraction, summarization, classification)."""
    source = Path(path) if path else BUILTIN_DATASET
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidDatasetError(f"Cannot read dataset {str(source)!r}: {exc.strerror}") from None
    return parse_dataset(text.splitlines(), BUILTIN_NAME if path is None else source.stem)
