"""Two service instances against one PostgreSQL and one Redis, under load, against one instance in the same run.

Each phase starts its instances (gunicorn masters on their own ports, `--workers` each) on a throwaway schema,
REDIS_URL set (breakers, routing statistics, cache and rate limits in Redis), one priced model on a lean local
upstream with a hard budget, and one managed key limited to `--limited-rpm` calls a minute. `--clients` threads
send `--requests` calls over keep-alive connections, spread over the instances; a tenth of the clients use the
limited key. Checks, per phase:
- 0 errors: every answer is 200, 402 (budget) or 429 (the key's limit), and no connection fails;
- one request-log row per request sent;
- the hard budget held: spend <= limit (and it bound: some 402s);
- the key's limit is shared: its answered calls <= rpm per clock minute the phase spanned (and it bound).
Usage: python -m benchmarks.bench_two_instances [--requests 4000] [--clients 200] [--workers 2]
(PostgreSQL from TEST_POSTGRES_URL or --database-url, Redis from TEST_REDIS_URL or --redis-url; skipped without)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from benchmarks.bench_load_postgres import send, throwaway_schema
from benchmarks.server_harness import ROOT, Service, free_port
from models.request_log import request_log
from monitoring.budgets import BudgetService, BudgetSpec
from storage.database import get_engine

ADMIN_KEY = "bench-admin-key"
# Worst case (4 prompt bytes, 10 output tokens) ~ $0.01 reserved, ~ $0.001 spent: the budget binds mid-run.
PRICING = {"input_per_million": 1.0, "output_per_million": 1000.0}


@contextmanager
def instances(count: int, *, database_url: str, redis_url: str, models: list[dict[str, Any]], workers: int,
              tmp: Path, env: dict[str, str] | None = None) -> Iterator[list[int]]:
    """`count` gunicorn masters (each with `workers` workers) sharing the database and Redis; yields their ports."""
    (tmp / "models.yaml").write_text(json.dumps({"models": models}))
    ports = [free_port() for _ in range(count)]
    with ExitStack() as stack:
        services = []
        for index, port in enumerate(ports):
            service_env = {"HOST": "127.0.0.1", "FLASK_PORT": str(port), "DATABASE_URL": database_url,
                           "REDIS_URL": redis_url, "MODELS_FILE": str(tmp / "models.yaml"), "API_KEYS": ADMIN_KEY,
                           "WEB_CONCURRENCY": str(workers), "LOG_LEVEL": "WARNING", **(env or {})}
            service = Service(f"instance-{index}", [sys.executable, "-m", "gunicorn", "-c",
                                                    str(ROOT / "gunicorn.conf.py"), "api.app:create_app()"],
                              env=service_env, log=tmp / f"instance-{index}.log")
            stack.callback(service.stop)
            services.append(service)
        for service, port in zip(services, ports, strict=True):
            service.wait_http(f"http://127.0.0.1:{port}/health", 120)
        yield ports


def call(port: int, path: str, body: dict[str, Any],
         key: str = ADMIN_KEY) -> tuple[int, dict[str, Any], dict[str, str]]:
    """One JSON POST on its own connection; returns status, body and headers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json", "X-API-Key": key})
        response = conn.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else {}, dict(response.getheaders())
    finally:
        conn.close()


def run_phase(admin_url: str, redis_url: str, *, instance_count: int, workers: int, requests: int, clients: int,
              limit_usd: float, limited_rpm: int) -> dict[str, Any]:
    """One phase on a fresh schema; its figures and checks."""
    model = f"load-{uuid.uuid4().hex[:8]}"  # fresh names: no breaker, cache or routing state from other runs
    with throwaway_schema(admin_url) as url, tempfile.TemporaryDirectory(prefix="bench-two-") as tmp:
        engine = get_engine(url)  # migrates before the instances start
        BudgetService(engine).create(BudgetSpec(name="load-hard", scope="model", target=model, period="total",
                                                limit_usd=limit_usd, hard_limit=True, alert_thresholds=[]))
        up_port = free_port()
        upstream = Service("upstream", [sys.executable, "-m", "benchmarks.upstream", "--port", str(up_port)],
                           log=Path(tmp) / "upstream.log")
        try:
            upstream.wait_http(f"http://127.0.0.1:{up_port}/health", 30)
            models = [{"name": model, "provider": "openai_compatible", "model": "fake-gpt", "max_attempts": 1,
                       "base_url": f"http://127.0.0.1:{up_port}/v1", "pricing": PRICING}]
            with instances(instance_count, database_url=url, redis_url=redis_url, models=models, workers=workers,
                           tmp=Path(tmp)) as ports:
                status, created, _ = call(ports[0], "/api/keys", {"name": "limited", "rpm": limited_rpm})
                assert status == 201, created
                body = json.dumps({"prompt": "ping", "model": model, "max_tokens": 10}).encode()
                limited_clients = max(1, clients // 10)
                shares = [requests // clients + (i < requests % clients) for i in range(clients)]
                keys = [created["key"] if i < limited_clients else ADMIN_KEY for i in range(clients)]
                sent_limited = sum(shares[:limited_clients])
                first_minute = int(time.time() // 60)
                started = time.monotonic()
                with ThreadPoolExecutor(clients) as pool:
                    results = list(pool.map(
                        lambda i: send(ports[i % len(ports)], shares[i], body, {"X-API-Key": keys[i]}), range(clients)))
                elapsed = time.monotonic() - started
                minutes = int(time.time() // 60) - first_minute + 1
        finally:
            upstream.stop()
        with engine.connect() as conn:
            rows: dict[str, int] = dict(conn.execute(select(request_log.c.status, func.count())
                                     .where(request_log.c.model == model).group_by(request_log.c.status)).all())
            spend = conn.execute(select(func.coalesce(func.sum(request_log.c.cost), 0.0))
                                 .where(request_log.c.model == model)).scalar_one()
            limited_answered = conn.execute(select(func.count()).where(
                request_log.c.model == model, request_log.c.api_key_id == created["id"],
                request_log.c.status == "success")).scalar_one()
        engine.dispose()
    statuses = sum(results, Counter())
    limited = sum(results[:limited_clients], Counter())
    errors = sum(count for status, count in statuses.items() if status not in (200, 402, 429))
    return {
        "instances": instance_count, "rps": requests / elapsed, "elapsed_s": elapsed, "statuses": dict(statuses),
        "rows": rows, "spend": spend, "limit_usd": limit_usd,
        "limited": {"sent": sent_limited, "answered": limited_answered, "rpm": limited_rpm, "minutes": minutes},
        "checks": {
            "0 errors": errors == 0,
            "one request-log row per request": sum(rows.values()) == requests,
            "budget held (spend <= limit) and bound": spend <= limit_usd + 1e-9 and statuses[402] > 0,
            "key limit shared (answered <= rpm per minute) and bound":
                limited_answered <= limited_rpm * minutes and limited[429] > 0,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("TEST_POSTGRES_URL"))
    parser.add_argument("--redis-url", default=os.environ.get("TEST_REDIS_URL"))
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--limit-usd", type=float, default=2.0, help="the hard budget; ~$0.001 per call")
    parser.add_argument("--limited-rpm", type=int, default=50)
    args, _ = parser.parse_known_args()
    if not (args.database_url or "").startswith("postgresql") or not args.redis_url:
        print("skipped: needs PostgreSQL and Redis (TEST_POSTGRES_URL, TEST_REDIS_URL)")
        return
    phases = [run_phase(args.database_url, args.redis_url, instance_count=count, workers=args.workers,
                        requests=args.requests, clients=args.clients, limit_usd=args.limit_usd,
                        limited_rpm=args.limited_rpm) for count in (1, 2)]
    print(f"{args.requests} requests from {args.clients} clients; {args.workers} workers per instance; "
          f"PostgreSQL + Redis")
    for phase in phases:
        limited = phase["limited"]
        print(f"  {phase['instances']} instance(s): {phase['rps']:.0f} req/s ({phase['elapsed_s']:.1f} s); answers "
              f"{phase['statuses']}; rows {phase['rows']}; spend ${phase['spend']:.4f} of ${phase['limit_usd']:.2f}; "
              f"limited key {limited['answered']} answered of {limited['sent']} sent "
              f"(rpm {limited['rpm']} x {limited['minutes']} min)")
        for name, ok in phase["checks"].items():
            print(f"    {'ok  ' if ok else 'FAIL'} {name}")
    print(f"  throughput, two instances / one: {phases[1]['rps'] / phases[0]['rps']:.2f}")
    if not all(ok for phase in phases for ok in phase["checks"].values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
