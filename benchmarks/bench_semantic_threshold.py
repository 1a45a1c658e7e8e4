"""Hit and false-hit rates of a semantic-cache similarity threshold, on a labelled set of prompt pairs.

The semantic cache answers a new single-turn message from a cached one when the cosine of their embeddings is at
least a threshold and `models.cache.question_guard` finds no detail that makes them different questions.
`tests/data/semantic_cache_pairs.jsonl` labels each pair `paraphrase` (same request, other words: should hit)
or `near_miss` (same topic, other intent or key detail: must not). Every text is embedded through
the managed call path of a throwaway registry; for thresholds 0.80-0.99 the bench prints the share of paraphrases
matched (hit rate) and of near misses matched (false-hit rate), by cosine alone and with the guard, and recommends
the lowest threshold whose guarded false-hit rate is <= 1%. Since the guard was designed by looking at this set,
it also picks a threshold on the even-numbered pairs and reports its rates on the odd-numbered ones.
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
from models.cache.question_guard import same_question
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


@dataclass(frozen=True)
class Scores:
    """Each label's pair cosines, and whether the question guard lets each pair match."""

    cosine: dict[str, np.ndarray]
    guarded: dict[str, np.ndarray]

    def rates(self, threshold: float, *, guard: bool = True) -> tuple[float, float]:
        """(hit rate, false-hit rate) of `cosine >= threshold`, with or without the guard."""
        matched = {label: (self.cosine[label] >= threshold) & (self.guarded[label] if guard else True)
                   for label in LABELS}
        return float(np.mean(matched["paraphrase"])), float(np.mean(matched["near_miss"]))

    def recommended(self) -> float | None:
        """The lowest threshold of the grid whose guarded false-hit rate is <= MAX_FALSE_HITS."""
        return next((t for t in THRESHOLDS if self.rates(t)[1] <= MAX_FALSE_HITS), None)


def score(pairs: list[Pair], vectors: dict[str, np.ndarray]) -> Scores:
    of = {label: [p for p in pairs if p.label == label] for label in LABELS}
    return Scores({label: np.array([float(vectors[p.a] @ vectors[p.b]) for p in of[label]]) for label in LABELS},
                  {label: np.array([same_question(p.b, p.a) for p in of[label]]) for label in LABELS})


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
    scores = score(pairs, vectors)
    cosine = scores.cosine

    print(f"semantic-cache threshold: {model_name}, {len(pairs)} pairs from {args.pairs.name}")
    print(f"  {len(texts)} distinct texts embedded in {elapsed:.1f} s ({len(next(iter(vectors.values())))} dims)")
    print("  pairs:", ", ".join(f"{len(cosine[label])} {label}" for label in LABELS))
    print(f"  {'cosine':<12} {'min':>6} {'median':>7} {'max':>6}")
    for label in LABELS:
        values = cosine[label]
        print(f"  {label:<12} {values.min():6.3f} {np.median(values):7.3f} {values.max():6.3f}")
    print(f"  AUC (a paraphrase scores above a near miss): {auc(cosine):.3f}")
    print(f"  guard refuses {1 - float(np.mean(scores.guarded['paraphrase'])):.1%} of paraphrases and "
          f"{1 - float(np.mean(scores.guarded['near_miss'])):.1%} of near misses, whatever their cosine")
    print(f"  {'':9}  {'cosine alone':^20}  {'cosine + guard':^20}")
    print(f"  {'threshold':>9}  {'hit rate':>8}  {'false hits':>10}  {'hit rate':>8}  {'false hits':>10}")
    for threshold in THRESHOLDS:
        alone, guarded = scores.rates(threshold, guard=False), scores.rates(threshold)
        print(f"  {threshold:9.2f}  {alone[0]:8.1%}  {alone[1]:10.1%}  {guarded[0]:8.1%}  {guarded[1]:10.1%}")
    recommended = scores.recommended()
    if recommended is None:
        print(f"  recommended threshold: none in {THRESHOLDS[0]:.2f}-{THRESHOLDS[-1]:.2f} keeps false hits <= "
              f"{MAX_FALSE_HITS:.0%}")
    else:
        hit, false_hit = scores.rates(recommended)
        print(f"  recommended threshold: {recommended:.2f} (lowest with guarded false hits <= {MAX_FALSE_HITS:.0%}): "
              f"hit rate {hit:.1%}, false hits {false_hit:.1%}")
    tuned, held_out = score(pairs[0::2], vectors), score(pairs[1::2], vectors)
    chosen = tuned.recommended()
    if chosen is not None:
        hit, false_hit = held_out.rates(chosen)
        print(f"  held out: {chosen:.2f} chosen on the even pairs gives hit rate {hit:.1%}, false hits "
              f"{false_hit:.1%} on the odd ones")
    cutoff = exact_cutoff(cosine)
    print(f"  cosine alone: > {cutoff:.4f} keeps false hits <= {MAX_FALSE_HITS:.0%}, hit rate "
          f"{float(np.mean(cosine['paraphrase'] > cutoff)):.1%}")
    if args.show > 0:
        ranked = {label: sorted((p for p in pairs if p.label == label),
                                key=lambda p: float(vectors[p.a] @ vectors[p.b])) for label in LABELS}
        print("  closest near misses (wrong answers, unless the guard refuses them):")
        for pair in ranked["near_miss"][::-1][:args.show]:
            print(f"    {float(vectors[pair.a] @ vectors[pair.b]):.4f}  {pair.a!r} / {pair.b!r}")
        print("  farthest paraphrases (missed hits):")
        for pair in ranked["paraphrase"][:args.show]:
            print(f"    {float(vectors[pair.a] @ vectors[pair.b]):.4f}  {pair.a!r} / {pair.b!r}")


if __name__ == "__main__":
    main()
