"""PostgreSQL under load: 4 gunicorn workers, one hard budget, N requests; every count must match exactly.

Checks: one request-log row per request sent (successes + budget refusals); the hard budget's spend never
passes its limit; /api/metrics and every Prometheus scrape (each served by whichever worker) total the
requests sent. Runs in a throwaway schema that is dropped afterwards.
Usage: python -m benchmarks.bench_load_postgres [--database-url postgresql://...] [--requests 2000]
(default URL: TEST_POSTGRES_URL; skipped when there is none)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, text

from benchmarks.server_harness import ROOT, Service, free_port
from models.request_log import request_log
from monitoring.budgets import BudgetService, BudgetSpec
from storage.database import create_db_engine, get_engine

MODEL = "load-upstream"
# Prices make the budget bind: worst case (4 prompt bytes, 10 output tokens) ~ $0.01, actual ~ $0.001.
PRICING = {"input_per_million": 1.0, "output_per_million": 1000.0}


@contextmanager
def throwaway_schema(admin_url: str) -> Iterator[str]:
    """A fresh schema; yields a URL whose search_path points at it; drops it afterwards."""
    schema = f"load_{uuid.uuid4().hex[:12]}"
    admin = create_db_engine(admin_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in admin_url else "?"
    try:
        yield f"{admin_url}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def send(port: int, count: int, body: bytes, headers: dict[str, str] | None = None) -> Counter[int]:
    """`count` POSTs to /api/generate over one keep-alive connection; returns status counts (0 = connection
    failure)."""
    statuses: Counter[int] = Counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(count):
        try:
            conn.request("POST", "/api/generate", body, {"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            response.read()
            statuses[response.status] += 1
        except OSError:
            statuses[0] += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.close()
    return statuses


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    data = conn.getresponse().read().decode()
    conn.close()
    return data


def prometheus_total(exposition: str, model: str) -> float:
    """Sum of `ai_model_requests_total` over statuses for `model`."""
    pattern = rf'^ai_model_requests_total\{{model="{re.escape(model)}",status="\w+"\}} ([\d.e+]+)$'
    return sum(float(v) for v in re.findall(pattern, exposition, re.M))


def run_load(database_url: str, *, requests: int, concurrency: int, workers: int, limit_usd: float,
             upstream_delay: float = 0.0) -> dict[str, Any]:
    """Start upstream + gunicorn on `database_url`, send `requests`, and return the figures and checks."""
    engine = get_engine(database_url)  # migrates the schema before the workers start
    budgets = BudgetService(engine)
    budgets.create(BudgetSpec(name="load-hard", scope="model", target=MODEL, period="total", limit_usd=limit_usd,
                              hard_limit=True, alert_thresholds=[]))
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        up_port, port = free_port(), free_port()
        upstream = Service("upstream", [sys.executable, "-m", "benchmarks.upstream", "--port", str(up_port),
                                        "--delay", str(upstream_delay)], log=Path(tmp) / "upstream.log")
        models = {"models": [{"name": MODEL, "provider": "openai_compatible", "model": "fake-gpt",
                              "base_url": f"http://127.0.0.1:{up_port}/v1", "pricing": PRICING}]}
        (Path(tmp) / "models.yaml").write_text(json.dumps(models))
        env = {"HOST": "127.0.0.1", "FLASK_PORT": str(port), "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING",
               "MODELS_FILE": str(Path(tmp) / "models.yaml"), "WEB_CONCURRENCY": str(workers)}
        server = Service("gunicorn", [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"),
                                      "api.app:create_app()"], env=env, log=Path(tmp) / "gunicorn.log")
        try:
            upstream.wait_http(f"http://127.0.0.1:{up_port}/health", 30)
            server.wait_http(f"http://127.0.0.1:{port}/health", 120)
            body = json.dumps({"prompt": "ping", "model": MODEL, "max_tokens": 10}).encode()
            shares = [requests // concurrency + (i < requests % concurrency) for i in range(concurrency)]
            started = time.monotonic()
            with ThreadPoolExecutor(concurrency) as pool:
                statuses = sum(pool.map(lambda n: send(port, n, body), shares), Counter())
            elapsed = time.monotonic() - started
            metrics = json.loads(_get(port, "/api/metrics?window=all"))
            scrapes = [prometheus_total(_get(port, "/metrics"), MODEL) for _ in range(2 * workers)]
        finally:
            server.stop()
            upstream.stop()
    with engine.connect() as conn:
        by_status = select(request_log.c.status, func.count()).where(request_log.c.model == MODEL)
        rows: dict[str, int] = dict(conn.execute(by_status.group_by(request_log.c.status)).all())
        spend = conn.execute(select(func.coalesce(func.sum(request_log.c.cost), 0.0))
                             .where(request_log.c.model == MODEL)).scalar_one()
    engine.dispose()
    figures = {"requests": requests, "elapsed_s": elapsed, "rps": requests / elapsed, "statuses": dict(statuses),
               "rows": rows, "spend": spend, "limit_usd": limit_usd,
               "metrics_total": metrics["overall"]["total_requests"], "prometheus_totals": scrapes}
    figures["checks"] = {
        "every request answered 200 or 402": statuses[200] + statuses[402] == requests,
        "one request-log row per request": sum(rows.values()) == requests,
        "rows match answers": rows.get("success", 0) == statuses[200] and rows.get("rejected", 0) == statuses[402],
        "budget bound (some refusals)": statuses[402] > 0,
        "spend <= hard limit": spend <= limit_usd + 1e-9,
        "/api/metrics total == requests": metrics["overall"]["total_requests"] == requests,
        "every Prometheus scrape == requests": all(total == requests for total in scrapes),
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_POSTGRES_URL"))
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--limit-usd", type=float, default=1.0, help="hard budget; ~$0.001 per call")
    args, _ = parser.parse_known_args()
    if not args.database_url or not args.database_url.startswith("postgresql"):
        print("skipped: no PostgreSQL URL (pass --database-url or set TEST_POSTGRES_URL)")
        return
    with throwaway_schema(args.database_url) as url:
        figures = run_load(url, requests=args.requests, concurrency=args.concurrency, workers=args.workers,
                           limit_usd=args.limit_usd)
    print(f"PostgreSQL load: {args.workers} workers, {args.concurrency} concurrent clients, "
          f"{figures['requests']} requests in {figures['elapsed_s']:.1f} s ({figures['rps']:.0f} req/s)")
    print(f"  answers {figures['statuses']}; request-log rows {figures['rows']}")
    print(f"  spend ${figures['spend']:.6f} of hard limit ${figures['limit_usd']:.6f}; /api/metrics total "
          f"{figures['metrics_total']}; Prometheus totals {sorted(set(figures['prometheus_totals']))}")
    for name, ok in figures["checks"].items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    if not all(figures["checks"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
