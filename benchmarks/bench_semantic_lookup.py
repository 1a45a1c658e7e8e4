"""How the semantic cache's lookup cost grows with the entries of one partition (brute-force cosine; no vector
index exists in the databases here).

For each size (default 10k and 100k entries of 384 dimensions, all-MiniLM-L6-v2's width, in one partition of a
throwaway SQLite database), it times: the first lookup of a process (the partition read from the table), then warm
lookups (the check for newly stored rows, one matrix-vector product and the candidates), median of `--lookups`.
Side by side in the same run: an exact hit's lookup of an answer in the database, the cost the semantic path adds
to. The embedding of the question itself (all-MiniLM-L6-v2: 13-20 ms on this machine) comes on top of either.
Usage: python -m benchmarks.bench_semantic_lookup [--sizes 10000 100000] [--lookups 50]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import numpy as np

from models.cache.semantic_index import SemanticIndex, semantic_cache
from models.cache.stores import SqlCacheBackend
from storage.clock import utcnow
from storage.database import create_db_engine, upgrade_schema, write

DIMENSIONS = 384
PARTITION = "p" * 64
INSERT_BATCH = 5_000


def fill(index: SemanticIndex, vectors: np.ndarray) -> None:
    """Store the vectors as the cache would, in batches (one insert per row would take minutes at 100k)."""
    expires = utcnow() + timedelta(hours=1)
    unit = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    for start in range(0, len(unit), INSERT_BATCH):
        rows = [{"partition": PARTITION, "key": f"{start + i:064x}", "model": "bench", "vector": vector.tobytes(),
                 "question": f"question {start + i}", "expires_at": expires}
                for i, vector in enumerate(unit[start:start + INSERT_BATCH])]
        with write(index.engine) as conn:
            conn.execute(semantic_cache.insert(), rows)


def median_ms(action: Callable[[], object], count: int) -> float:
    times = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def measure(tmp: Path, size: int, lookups: int, rng: np.random.Generator) -> dict[str, float]:
    engine = create_db_engine(f"sqlite:///{tmp / f'semantic-{size}.db'}")
    upgrade_schema(engine)
    fill(SemanticIndex(engine), rng.normal(size=(size, DIMENSIONS)))
    backend = SqlCacheBackend(engine)
    backend.put("a" * 64, "bench", '{"answer": "kept"}', 3600)
    queries = rng.normal(size=(lookups, DIMENSIONS)).tolist()
    index = SemanticIndex(engine, fresh_s=3600)
    started = time.perf_counter()
    index.closest(PARTITION, queries[0], threshold=0.91)
    first_ms = (time.perf_counter() - started) * 1000
    remaining = iter(queries * 2)
    warm_ms = median_ms(lambda: index.closest(PARTITION, next(remaining), threshold=0.91), lookups)
    exact_ms = median_ms(lambda: backend.get("a" * 64), lookups)
    engine.dispose()
    return {"first": first_ms, "warm": warm_ms, "exact": exact_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--lookups", type=int, default=50)
    args, _ = parser.parse_known_args()
    rng = np.random.default_rng(1)
    print(f"semantic lookup, one partition of {DIMENSIONS}-dimension vectors (SQLite, brute-force cosine)")
    print(f"  {'entries':>8}  {'first (ms)':>10}  {'warm (ms)':>9}  {'exact get (ms)':>14}  {'warm / exact':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            figures = measure(Path(tmp), size, args.lookups, rng)
            print(f"  {size:>8}  {figures['first']:10.1f}  {figures['warm']:9.2f}  {figures['exact']:14.3f}  "
                  f"{figures['warm'] / figures['exact']:12.1f}", flush=True)


if __name__ == "__main__":
    main()
