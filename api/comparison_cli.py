"""`flask compare` and `flask benchmark`: the comparison service from the command line, with progress bars."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from flask import Flask

from api.services import services
from comparison.dataset import load_dataset
from comparison.reports import DEFAULT_QUALITY_BAR, render_markdown
from models.errors import ModelError


def _json_option(value: str | None, name: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON: {exc.msg}", param_hint=name) from None


def register_comparison_cli(app: Flask) -> None:
    @app.cli.command("compare")
    @click.argument("models", nargs=-1, required=True)
    @click.option("--prompt", "-p", required=True, help="The prompt every model answers.")
    @click.option("--system", default=None, help="System prompt for every model.")
    @click.option("--max-tokens", type=click.IntRange(1), default=None)
    @click.option("--temperature", type=click.FloatRange(0, 2), default=None)
    @click.option("--reference", default=None, help="Reference answer for reference-based scorers.")
    @click.option("--scorer", "scorers", multiple=True, help='Scorer spec as JSON, e.g. {"type": "contains"}.')
    @click.option("--weights", default=None, help='JSON, e.g. {"quality": 1, "cost": 1}.')
    @click.option("--repetitions", type=click.IntRange(1, 20), default=1)
    @click.option("--json", "as_json", is_flag=True, help="Print the whole comparison as JSON.")
    def compare(models: tuple[str, ...], prompt: str, system: str | None, max_tokens: int | None,
                temperature: float | None, reference: str | None, scorers: tuple[str, ...], weights: str | None,
                repetitions: int, as_json: bool) -> None:
        """Compare MODELS side by side on one prompt; the result is stored in the history."""
        specs = [_json_option(spec, "--scorer") for spec in scorers]
        with click.progressbar(length=len(models), label="Comparing", file=sys.stderr) as bar:
            try:
                result = services().comparator.compare_models(
                    list(models), prompt, system=system, max_tokens=max_tokens, temperature=temperature,
                    reference=reference, scorers=specs, weights=_json_option(weights, "--weights"),
                    repetitions=repetitions, on_model_done=lambda _model: bar.update(1),
                )
            except ModelError as exc:
                raise click.ClickException(f"{exc.code}: {exc.message}") from None
        if as_json:
            click.echo(json.dumps(result, indent=2, default=str))
            return
        for entry in result["results"]:
            click.echo(_entry_line(entry))
        tied = result["winner_details"]["tied"]
        click.echo(f"Winner: {result['winner']}" if result["winner"] else f"Tie: {', '.join(tied) or 'no answer'}")
        click.echo(result["explanation"])
        metrics = result["comparison_metrics"]
        click.echo(f"Wall time {metrics['wall_time']:.3f} s; comparison id {result['id']}")

    @app.cli.command("benchmark")
    @click.argument("models", nargs=-1, required=True)
    @click.option("--dataset", "dataset_path", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="JSONL dataset (default: the built-in set).")
    @click.option("--task", "tasks", multiple=True, help="Only items of this task (repeatable).")
    @click.option("--limit", type=click.IntRange(1), default=None, help="At most this many items.")
    @click.option("--max-tokens", type=click.IntRange(1), default=None)
    @click.option("--quality-bar", type=click.FloatRange(0, 1), default=DEFAULT_QUALITY_BAR)
    @click.option("--json-report", type=click.Path(dir_okay=False, writable=True), default=None,
                  help="Also write the JSON report to this file.")
    def benchmark(models: tuple[str, ...], dataset_path: str | None, tasks: tuple[str, ...], limit: int | None,
                  max_tokens: int | None, quality_bar: float, json_report: str | None) -> None:
        """Benchmark MODELS over a dataset and print the Markdown report."""
        runner = services().benchmarks
        try:
            dataset = load_dataset(dataset_path).select(tasks=tasks or None, limit=limit)
            run_id = runner.create(list(models), dataset, max_tokens=max_tokens, quality_bar=quality_bar)
        except ModelError as exc:
            raise click.ClickException(f"{exc.code}: {exc.message}") from None
        total = len(dataset.items) * len(models)
        with click.progressbar(length=total, label=f"Benchmark {run_id}", file=sys.stderr) as bar:
            report = runner.execute(run_id, on_progress=lambda done, _total: bar.update(done - bar.pos))
        if json_report:
            Path(json_report).write_text(json.dumps(report, indent=2), encoding="utf-8")
        click.echo(render_markdown(report))


def _entry_line(entry: dict[str, Any]) -> str:
    if entry["status"] != "success":
        return f"{entry['model']}: ERROR {entry['error']['code']}: {entry['error']['message']}"
    cost = "n/a" if entry["cost"] is None else f"${entry['cost']:.6f}"
    quality = "" if entry["quality"] is None else f", quality {entry['quality']:.2f}"
    figures = f"{entry['latency']:.3f} s, {entry['tokens']} tokens, {cost}{quality}"
    return f"{entry['model']}: {figures} -> {entry['response']!r}"
