"""Hit and false-hit rates of a semantic-cache similarity threshold, on a labelled set of prompt pairs.

A semantic cache would answer a new single-turn message from a cached one when the cosine of their embeddings is
at least a threshold. `tests/data/semantic_cache_pairs.jsonl` labels each pair `paraphrase` (same request, other
words: should hit) or `near_miss` (same topic, other intent or key detail: must not). Every text is embedded through
the managed call path of a throwaway registry; for thresholds 0.80-0.99 the bench prints the share of paraphrases
matched (hit rate) and of near misses matched (false-hit rate), and recommends the lowest threshold whose false-hit
rate is <= 1%.
By default it measures the bundled local model with an empty environment (reproducible); `--model NAME` reads the
process environment and `.env` (keys, LOCAL_MODEL_PATH, MODELS_FILE) to measure another registered embedding model.
Usage: python -m benchmarks.bench_semantic_threshold [--model NAME] [--pairs PATH] [--show 5]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import AppError
from core.settings import Settings
from models.model_registry import ModelRegistry

PAIRS_FILE = Path(__file__).resolve().parent.parent / "tests" / "data" / "semantic_cache_pairs.jsonl"
LABELS = ("paraphrase", "near_miss")
THRESHOLDS = tuple(round(0.80 + step / 100, 2) for step in range(20))  # 0.80 .. 0.99
MAX_FALSE_HITS = 0.01
BATCH = 32


@dataclass(frozen=True)
class Pair:
    a: str
    b: str
    label: str
    topic: str


def load_pairs(path: Path) -> list[Pair]:
    """The labelled pairs; an unknown label fails loudly rather than skewing a rate."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            pair = Pair(**json.loads(line))
            if pair.label not in LABELS:
                raise ValueError(f"{path}:{number}: label {pair.label!r} is not one of {LABELS}")
            pairs.append(pair)
    return pairs


def _registry(database_url: str, *, from_environment: bool) -> ModelRegistry:
    """A registry on a throwaway database: with an empty environment (the bundled local model only) unless the
    model to measure needs the configured keys and model files."""
    overrides = {"DATABASE_URL": database_url}
    settings = (Settings.from_env(overrides=overrides) if from_environment
                else Settings.from_env(environ={}, env_file=None, overrides=overrides))
    return ModelRegistry(database_url, settings=settings)


def embed_all(registry: ModelRegistry, model_name: str, texts: list[str]) -> dict[str, np.ndarray]:
    """Each distinct text's vector, re-normalised (a provider's vectors need not be unit length), embedded in
    batches through the model's managed call path, as the cache would embed them."""
    model = registry.require_model(model_name)
    vectors: dict[str, np.ndarray] = {}
    for start in range(0, len(texts), BATCH):
        batch = texts[start:start + BATCH]
        result = model.embed(batch, tags=["bench_semantic_threshold"])
        for text, vector in zip(batch, result.vectors, strict=True):
            array = np.asarray(vector, dtype=np.float64)
            vectors[text] = array / np.linalg.norm(array)
    return vectors


def cosines(pairs: list[Pair], vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each label's pair cosines."""
    return {label: np.array([float(vectors[p.a] @ vectors[p.b]) for p in pairs if p.label == label])
            for label in LABELS}


def rates(scores: dict[str, np.ndarray], threshold: float) -> tuple[float, float]:
    """(hit rate, false-hit rate) of `cosine >= threshold`."""
    return float(np.mean(scores["paraphrase"] >= threshold)), float(np.mean(scores["near_miss"] >= threshold))


def auc(scores: dict[str, np.ndarray]) -> float:
    """Probability that a random paraphrase scores above a random near miss (ties count half): how well the
    cosine separates the labels whatever the threshold."""
    para, near = scores["paraphrase"][:, None], scores["near_miss"][None, :]
    return float(np.mean((para > near) + 0.5 * (para == near)))


def exact_cutoff(scores: dict[str, np.ndarray]) -> float:
    """The cosine a threshold must exceed for at most 1% of near misses to match (finer than the 0.01 grid)."""
    near = np.sort(scores["near_miss"])[::-1]
    allowed = int(MAX_FALSE_HITS * len(near))
    return float(near[allowed]) if allowed < len(near) else -1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="a registered embedding model (default: the bundled local "
                        "model, with an empty environment)")
    parser.add_argument("--pairs", type=Path, default=PAIRS_FILE, help="labelled pairs, one JSON object a line")
    parser.add_argument("--show", type=int, default=5, help="closest near misses and farthest paraphrases to list")
    args, _ = parser.parse_known_args()
    pairs = load_pairs(args.pairs)
    texts = list(dict.fromkeys(text for pair in pairs for text in (pair.a, pair.b)))
    with tempfile.TemporaryDirectory() as tmp:
        registry = _registry(f"sqlite:///{Path(tmp) / 'semantic.db'}", from_environment=args.model is not None)
        try:
            model_name = registry.resolve(args.model or "local")
            start = time.perf_counter()
            vectors = embed_all(registry, model_name, texts)
        except AppError as exc:  # an unknown model, one that does not embed, a provider refusing the texts
            parser.error(f"--model {args.model}: {exc}")
        finally:
            registry.engine.dispose()
        elapsed = time.perf_counter() - start
    scores = cosines(pairs, vectors)

    print(f"semantic-cache threshold: {model_name}, {len(pairs)} pairs from {args.pairs.name}")
    print(f"  {len(texts)} distinct texts embedded in {elapsed:.1f} s ({len(next(iter(vectors.values())))} dims)")
    print("  pairs:", ", ".join(f"{len(scores[label])} {label}" for label in LABELS))
    print(f"  {'cosine':<12} {'min':>6} {'median':>7} {'max':>6}")
    for label in LABELS:
        values = scores[label]
        print(f"  {label:<12} {values.min():6.3f} {np.median(values):7.3f} {values.max():6.3f}")
    print(f"  AUC (a paraphrase scores above a near miss): {auc(scores):.3f}")
    print(f"  {'threshold':>9}  {'hit rate':>8}  {'false hits':>10}")
    recommended = None
    for threshold in THRESHOLDS:
        hit, false_hit = rates(scores, threshold)
        print(f"  {threshold:9.2f}  {hit:8.1%}  {false_hit:10.1%}")
        if recommended is None and false_hit <= MAX_FALSE_HITS:
            recommended = threshold
    if recommended is not None:
        hit, false_hit = rates(scores, recommended)
        print(f"  recommended threshold: {recommended:.2f} (lowest with false hits <= {MAX_FALSE_HITS:.0%}): "
              f"hit rate {hit:.1%}, false hits {false_hit:.1%}")
    else:
        print(f"  recommended threshold: none in {THRESHOLDS[0]:.2f}-{THRESHOLDS[-1]:.2f} keeps false hits <= "
              f"{MAX_FALSE_HITS:.0%}")
    cutoff = exact_cutoff(scores)
    print(f"  exact: cosine > {cutoff:.4f} keeps false hits <= {MAX_FALSE_HITS:.0%}, hit rate "
          f"{float(np.mean(scores['paraphrase'] > cutoff)):.1%}")
    if args.show > 0:
        ranked = {label: sorted((p for p in pairs if p.label == label),
                                key=lambda p: float(vectors[p.a] @ vectors[p.b])) for label in LABELS}
        print("  closest near misses (would be wrong answers):")
        for pair in ranked["near_miss"][::-1][:args.show]:
            print(f"    {float(vectors[pair.a] @ vectors[pair.b]):.4f}  {pair.a!r} / {pair.b!r}")
        print("  farthest paraphrases (missed hits):")
        for pair in ranked["paraphrase"][:args.show]:
            print(f"    {float(vectors[pair.a] @ vectors[pair.b]):.4f}  {pair.a!r} / {pair.b!r}")


if __name__ == "__main__":
    main()
