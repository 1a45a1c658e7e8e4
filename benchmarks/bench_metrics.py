"""GET /api/metrics and /api/costs at 10k and 1M recorded requests, side by side: `python -m benchmarks.bench_metrics`.

Both data sets span the same 30 days, models, users and tags, so the only difference is the row count.
Rows are bulk-inserted, then the hourly rollups are rebuilt from the raw log in one pass.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from api.app import create_app
from core.settings import Settings
from models.request_log import request_log
from models.rollups import rollup_row_counts
from monitoring.rollup_rebuild import rebuild_rollups
from storage.clock import utcnow
from storage.database import get_engine, is_sqlite

MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "local-smollm2")
USERS = tuple(f"user-{n:02d}" for n in range(20))
TAGS = ("chat", "batch", "eval", "summaries", "search", "code", "docs", "support")
ERRORS = ("provider_unavailable", "rate_limited", "provider_timeout")
SPAN = timedelta(days=30)
COLUMNS = ("request_id", "created_at", "model", "provider", "source", "user_id", "tags", "stream", "input_tokens",
           "output_tokens", "thinking_tokens", "cached_tokens", "total_tokens", "latency", "ttft", "cost", "status",
           "error_type")
ENDPOINTS = ("/api/metrics", "/api/costs", "/api/metrics?window=24h", "/api/costs?window=24h")


def _rows(count: int, rng: random.Random):
    """Chronological rows with sequential ids, so every index is appended to rather than shuffled."""
    start = utcnow() - SPAN
    step = SPAN / count
    for n in range(count):
        failed = rng.random() < 0.05
        inp, out = rng.randint(10, 2000), 0 if failed else rng.randint(1, 800)
        yield (
            f"bench-{n:09d}", (start + n * step).isoformat(" ", "microseconds"), rng.choice(MODELS), "bench", "api",
            rng.choice(USERS),
            f'["{rng.choice(TAGS)}"]', False, inp, out, 0, 0, inp + out, rng.lognormvariate(-0.5, 0.8), None,
            None if failed else (inp + 4 * out) / 1e7, "error" if failed else "success",
            rng.choice(ERRORS) if failed else None,
        )


def seed(url: str, count: int, chunk: int = 50_000) -> tuple[float, float]:
    """Bulk-insert `count` raw rows and rebuild the rollups; returns (wall, CPU) seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    engine = get_engine(url)
    rng = random.Random(count)
    batch: list[tuple] = []
    with engine.begin() as conn:
        for row in _rows(count, rng):
            batch.append(row)
            if len(batch) == chunk:
                _insert(conn, batch)
                batch = []
        if batch:
            _insert(conn, batch)
    rebuild_rollups(engine)
    return time.perf_counter() - wall, time.process_time() - cpu


def _insert(conn, batch: list[tuple]) -> None:
    if is_sqlite(conn):  # the driver's executemany skips per-row statement overhead
        sql = f"INSERT INTO request_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
        conn.connection.driver_connection.executemany(sql, batch)
    else:
        rows = [dict(zip(COLUMNS, row, strict=True)) for row in batch]
        for row in rows:
            row["tags"] = json.loads(row["tags"])
            row["created_at"] = datetime.fromisoformat(row["created_at"])
        conn.execute(request_log.insert(), rows)


def time_endpoints(urls: list[str], repeats: int,
                   paths: tuple[str, ...] = ENDPOINTS) -> dict[str, dict[str, float]]:
    """Median milliseconds per database and path; calls alternate between databases, so load hits both alike."""
    clients = {}
    for url in urls:
        overrides = {"DATABASE_URL": url, "LOG_LEVEL": "WARNING"}  # no access-log line per timed request
        settings = Settings.from_env(environ={}, env_file=None, overrides=overrides)
        clients[url] = create_app(settings).test_client()
    samples: dict[str, dict[str, list[float]]] = {url: {path: [] for path in paths} for url in urls}
    for attempt in range(repeats + 2):
        for path in paths:
            for url, client in clients.items():
                started = time.perf_counter()
                response = client.get(path)
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, response.get_data(as_text=True)
                if attempt >= 2:  # two warm-up rounds
                    samples[url][path].append(elapsed)
    return {url: {path: statistics.median(values) for path, values in by_path.items()}
            for url, by_path in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = {}
        for count in (args.small, args.large):
            urls[count] = f"sqlite:///{Path(tmp) / f'bench_{count}.db'}"
            wall, cpu = seed(urls[count], count)
            counts = rollup_row_counts(get_engine(urls[count]))
            print(f"seeded {count:>9,} rows in {wall:5.1f}s wall ({cpu:5.1f}s CPU); rollup rows: {counts}")
        results = time_endpoints([urls[args.small], urls[args.large]], args.repeats)
    small_url, large_url = urls[args.small], urls[args.large]
    print(f"\n{'endpoint (median ms)':<28}{args.small:>12,}{args.large:>12,}{'ratio':>8}")
    for path in ENDPOINTS:
        small, large = results[small_url][path], results[large_url][path]
        print(f"{path:<28}{small:>12.2f}{large:>12.2f}{large / small:>8.2f}")


if __name__ == "__main__":
    main()
