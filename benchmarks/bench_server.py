"""The production server side by side with bare Flask and LiteLLM's proxy, in front of the same local upstream.

(a) instant upstream, 50 connections, 2 workers: /api/generate (a models.yaml model) vs a bare Flask echo under
    the same gunicorn.conf.py vs LiteLLM's proxy (2 workers, no database);
(b) added latency at 1 connection: /api/generate p50 minus the upstream's own p50;
(c) 500 ms upstream, 200 connections: req/s / 400 (Little's law);
(d) RSS/PSS of the 2-worker service before the local model loads, and seconds from start to /health;
(e) 450 slow clients (a request body trickled a byte a second) connected: /health answered, and (c) again,
    beside the same service with the former 200 threads per worker, which the slow clients fill;
(f) the OpenAI-compatible /v1/chat/completions in (a), (b) and (c), against /api/generate in the same rounds
    (LiteLLM's figures are its own /chat/completions);
(g) /api/generate through a 2-deployment group (weighted, both on the instant upstream) against one model in (a).
Rounds interleave the systems so machine noise hits all alike; the table shows medians and ratios. Before
each case every service must be idle, so one system's backlog never runs during another's measurement.
LiteLLM runs when `.bench/litellm-venv` exists (`make bench-litellm` installs it).
Usage: python -m benchmarks.bench_server [--rounds 3] [--seconds 5] [--no-litellm] [--worker-class gthread]
       [--slow-clients 450]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from benchmarks.server_harness import (
    ROOT,
    Service,
    WrkResult,
    free_port,
    memory_mb,
    post_script,
    probe_ms,
    run_wrk,
    wait_until_idle,
)
from benchmarks.slow_clients import SlowClients

LITELLM = ROOT / ".bench" / "litellm-venv" / "bin" / "litellm"
LITELLM_KEY = "sk-bench-local"
TARGETS = {"a_litellm": 10.0, "a_flask": 0.40, "b_ms": 1.5, "c": 0.90, "d_mb": 300.0, "d_s": 2.0}
FORMER_THREADS = "200"  # WEB_THREADS before slow clients were taken into account
HEALTH_PROBES = 10


class Bench:
    """Owns the upstreams and services of one benchmark run, in a scratch directory."""

    def __init__(self, tmp: Path, worker_class: str, workers: int) -> None:
        self.tmp = tmp
        self.worker_class = worker_class
        self.workers = workers
        self.services: list[Service] = []
        self.fast_port, self.slow_port = free_port(), free_port()
        for port, delay in ((self.fast_port, 0.0), (self.slow_port, 0.5)):
            self._start("upstream", [sys.executable, "-m", "benchmarks.upstream", "--port", str(port),
                                     "--delay", str(delay)]).wait_http(f"http://127.0.0.1:{port}/health", 30)
        (tmp / "models.yaml").write_text(json.dumps({"models": [
            {"name": "fast-upstream", "provider": "openai_compatible", "model": "fake-gpt",
             "base_url": f"http://127.0.0.1:{self.fast_port}/v1",
             "pricing": {"input_per_million": 0.15, "output_per_million": 0.6}},
            {"name": "slow-upstream", "provider": "openai_compatible", "model": "fake-gpt",
             "base_url": f"http://127.0.0.1:{self.slow_port}/v1",
             "pricing": {"input_per_million": 0.15, "output_per_million": 0.6}},
            {"name": "fast-upstream-b", "provider": "openai_compatible", "model": "fake-gpt",
             "base_url": f"http://127.0.0.1:{self.fast_port}/v1",
             "pricing": {"input_per_million": 0.15, "output_per_million": 0.6}},
        ], "groups": [
            {"name": "fast-group", "deployments": [{"model": "fast-upstream"}, {"model": "fast-upstream-b"}]},
        ]}))
        self.scripts = {
            "ours_fast": post_script(tmp / "fast.lua", '{"prompt": "ping", "model": "fast-upstream"}', JSON),
            "ours_slow": post_script(tmp / "slow.lua", '{"prompt": "ping", "model": "slow-upstream"}', JSON),
            "group_fast": post_script(tmp / "group.lua", '{"prompt": "ping", "model": "fast-group"}', JSON),
            "echo": post_script(tmp / "echo.lua", '{"prompt": "ping", "model": "fast-upstream"}', JSON),
            "openai_fast": post_script(tmp / "openai_fast.lua", _chat("fast-gpt"), {**JSON, **AUTH}),
            "openai_slow": post_script(tmp / "openai_slow.lua", _chat("slow-gpt"), {**JSON, **AUTH}),
            "v1_fast": post_script(tmp / "v1_fast.lua", _chat("fast-upstream"), JSON),
            "v1_slow": post_script(tmp / "v1_slow.lua", _chat("slow-upstream"), JSON),
        }

    def _start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Service:
        service = Service(name, argv, env=env, log=self.tmp / f"{name}-{len(self.services)}.log")
        self.services.append(service)
        return service

    def gunicorn(self, app: str, port: int, database: str, **extra_env: str) -> Service:
        env = {"HOST": "127.0.0.1", "FLASK_PORT": str(port), "DATABASE_URL": database,
               "MODELS_FILE": str(self.tmp / "models.yaml"), "WEB_CONCURRENCY": str(self.workers),
               "WEB_WORKER_CLASS": self.worker_class, **extra_env}
        return self._start("gunicorn", [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), app],
                           env)

    def litellm(self, port: int) -> Service:
        config = {"model_list": [
            {"model_name": name, "litellm_params": {"model": "openai/fake-gpt", "api_key": "bench",
                                                    "api_base": f"http://127.0.0.1:{upstream}/v1"}}
            for name, upstream in (("fast-gpt", self.fast_port), ("slow-gpt", self.slow_port))],
            "general_settings": {"master_key": LITELLM_KEY}}
        (self.tmp / "litellm.yaml").write_text(json.dumps(config))
        argv = [str(LITELLM), "--config", str(self.tmp / "litellm.yaml"), "--host", "127.0.0.1", "--port", str(port),
                "--num_workers", str(self.workers)]
        return self._start("litellm", argv, {"LITELLM_LOCAL_MODEL_COST_MAP": "True"})

    def close(self) -> None:
        for service in reversed(self.services):
            service.stop()


JSON = {"Content-Type": "application/json"}
AUTH = {"Authorization": f"Bearer {LITELLM_KEY}"}


def _chat(model: str) -> str:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "ping"}]})


def measure_start(bench: Bench, rounds: int) -> dict[str, list[float]]:
    """(d): seconds from launch to /health, then RSS and PSS; a first start on an empty database (migrations
    run), then `rounds` restarts on the migrated one, as a deployment restarts."""
    figures: dict[str, list[float]] = {"first_start_s": [], "start_s": [], "rss_mb": [], "pss_mb": []}
    for index in range(rounds + 1):
        port = free_port()
        service = bench.gunicorn("api.app:create_app()", port, f"sqlite:///{bench.tmp / 'start.db'}")
        figures["start_s" if index else "first_start_s"].append(service.wait_http(f"http://127.0.0.1:{port}/health"))
        if index:
            rss, pss = memory_mb(service.proc.pid)
            figures["rss_mb"].append(rss)
            figures["pss_mb"].append(pss)
        service.stop()
    return figures


def run(args: argparse.Namespace, tmp: Path) -> dict[str, list[float]]:
    bench = Bench(tmp, args.worker_class, args.workers)
    try:
        results = measure_start(bench, args.rounds)
        ours_port, echo_port, litellm_port = free_port(), free_port(), free_port()
        ours = bench.gunicorn("api.app:create_app()", ours_port, f"sqlite:///{tmp / 'bench.db'}")
        echo = bench.gunicorn("benchmarks.echo_app:create_app()", echo_port, f"sqlite:///{tmp / 'echo.db'}")
        use_litellm = args.litellm and LITELLM.exists()
        litellm = bench.litellm(litellm_port) if use_litellm else None
        ours.wait_http(f"http://127.0.0.1:{ours_port}/health")
        echo.wait_http(f"http://127.0.0.1:{echo_port}/health")
        if litellm is not None:
            results["litellm_start_s"] = [litellm.wait_http(f"http://127.0.0.1:{litellm_port}/health/liveliness", 600)]
            results["litellm_rss_mb"], results["litellm_pss_mb"] = (
                [value] for value in memory_mb(litellm.proc.pid))
        base = "http://127.0.0.1:"
        scripts = bench.scripts
        generate, chat = f"{base}{ours_port}/api/generate", f"{base}{ours_port}/v1/chat/completions"
        cases: dict[str, Callable[[], WrkResult]] = {  # each of ours beside its /v1 twin, so both see one machine
            "a_ours": lambda: run_wrk(generate, scripts["ours_fast"], 50, args.seconds),
            "a_group": lambda: run_wrk(generate, scripts["group_fast"], 50, args.seconds),
            "a_v1": lambda: run_wrk(chat, scripts["v1_fast"], 50, args.seconds),
            "a_flask": lambda: run_wrk(f"{base}{echo_port}/echo", bench.scripts["echo"], 50, args.seconds),
            "b_ours": lambda: run_wrk(generate, scripts["ours_fast"], 1, args.seconds),
            "b_v1": lambda: run_wrk(chat, scripts["v1_fast"], 1, args.seconds),
            "b_direct": lambda: run_wrk(f"{base}{bench.fast_port}/v1/chat/completions", bench.scripts["openai_fast"],
                                        1, args.seconds),
            "c_ours": lambda: run_wrk(generate, scripts["ours_slow"], 200, 2 * args.seconds),
            "c_v1": lambda: run_wrk(chat, scripts["v1_slow"], 200, 2 * args.seconds),
        }
        if litellm is not None:
            cases["a_litellm"] = lambda: run_wrk(f"{base}{litellm_port}/chat/completions",
                                                 bench.scripts["openai_fast"], 50, args.seconds, timeout=30)
            cases["b_litellm"] = lambda: run_wrk(f"{base}{litellm_port}/chat/completions",
                                                 bench.scripts["openai_fast"], 1, args.seconds)
            cases["c_litellm"] = lambda: run_wrk(f"{base}{litellm_port}/chat/completions",
                                                 bench.scripts["openai_slow"], 200, 2 * args.seconds, timeout=30)
        for case in cases.values():  # warm-up: connections, caches, lazy imports
            _warm(case)
        for index in range(args.rounds):
            print(f"  round {index + 1}/{args.rounds}", flush=True)
            for name, case in cases.items():
                wait_until_idle([service.proc.pid for service in bench.services])
                outcome = case()
                results.setdefault(f"{name}_rps", []).append(outcome.rps)
                results.setdefault(f"{name}_p50", []).append(outcome.p50_ms)
                results.setdefault(f"{name}_errors", []).append(outcome.errors)
        results["rss_loaded_mb"], results["pss_loaded_mb"] = ([value] for value in memory_mb(ours.proc.pid))
        former_port = free_port()
        former = bench.gunicorn("api.app:create_app()", former_port, f"sqlite:///{tmp / 'former.db'}",
                                WEB_THREADS=FORMER_THREADS)
        former.wait_http(f"http://127.0.0.1:{former_port}/health")
        for index in range(args.rounds):
            print(f"  slow clients, round {index + 1}/{args.rounds}", flush=True)
            for name, port in (("ours", ours_port), ("former", former_port)):
                wait_until_idle([service.proc.pid for service in bench.services])
                for key, value in measure_slow_clients(bench, port, args).items():
                    results.setdefault(f"e_{name}_{key}", []).append(value)
        return results
    finally:
        bench.close()


def measure_slow_clients(bench: Bench, port: int, args: argparse.Namespace) -> dict[str, float]:
    """(e): with `args.slow_clients` slow clients connected, /health probes and then case (c)."""
    with SlowClients(port, args.slow_clients) as slow:
        latencies = [probe_ms(f"http://127.0.0.1:{port}/health", timeout=2.0) for _ in range(HEALTH_PROBES)]
        answered = [ms for ms in latencies if ms is not None]
        outcome = run_wrk(f"http://127.0.0.1:{port}/api/generate", bench.scripts["ours_slow"], 200,
                          2 * args.seconds)
        connected = slow.connected
    return {"health_answered": len(answered), "health_max_ms": max(answered, default=float("nan")),
            "c_rps": outcome.rps, "c_errors": outcome.errors, "connected": connected}


def _warm(case: Callable[[], WrkResult]) -> None:
    try:
        case()
    except Exception as exc:  # the measured run reports the failure
        print(f"  warm-up failed: {exc}", flush=True)


def report(results: dict[str, list[float]], args: argparse.Namespace) -> None:
    med = {name: statistics.median(values) for name, values in results.items()}
    runs = f"median of {args.rounds} interleaved rounds"
    has_litellm = "a_litellm_rps" in med
    print(f"\nserver benchmark: {args.workers} workers ({args.worker_class}), SQLite, {runs}; per-run values in []; "
          f"(e) with {args.slow_clients} slow clients")

    def row(label: str, key: str, unit: str = "") -> None:
        values = ", ".join(f"{v:.2f}" if v < 100 else f"{v:.0f}" for v in results[key])
        print(f"  {label:<46} {med[key]:>9.2f}{unit:<6} [{values}]")

    row("(a) ours /api/generate req/s (50 conns)", "a_ours_rps")
    row("(a) ours /v1/chat/completions req/s (50 conns)", "a_v1_rps")
    row("(a) ours /api/generate via a 2-deployment group", "a_group_rps")
    row("(a) bare Flask echo req/s (50 conns)", "a_flask_rps")
    if has_litellm:
        row("(a) LiteLLM proxy req/s (50 conns)", "a_litellm_rps")
    row("(b) ours p50 at 1 conn", "b_ours_p50", " ms")
    row("(b) ours /v1 p50 at 1 conn", "b_v1_p50", " ms")
    row("(b) upstream direct p50 at 1 conn", "b_direct_p50", " ms")
    if has_litellm:
        row("(b) LiteLLM p50 at 1 conn", "b_litellm_p50", " ms")
    row("(c) ours req/s, 500 ms upstream, 200 conns", "c_ours_rps")
    row("(c) ours errors (socket + non-2xx)", "c_ours_errors")
    row("(c) ours /v1 req/s, 500 ms upstream, 200 conns", "c_v1_rps")
    row("(c) ours /v1 errors (socket + non-2xx)", "c_v1_errors")
    if has_litellm:
        row("(c) LiteLLM req/s, 500 ms upstream, 200 conns", "c_litellm_rps")
    row(f"(e) /health answered of {HEALTH_PROBES}, ours", "e_ours_health_answered")
    row(f"(e) /health answered of {HEALTH_PROBES}, {FORMER_THREADS} threads", "e_former_health_answered")
    row("(e) /health slowest answer, ours", "e_ours_health_max_ms", " ms")
    row("(e) (c) req/s under the slow clients, ours", "e_ours_c_rps")
    row(f"(e) (c) req/s under the slow clients, {FORMER_THREADS} threads", "e_former_c_rps")
    row("(e) slow clients still connected at the end, ours", "e_ours_connected")
    row("(d) ours RSS, 2 workers + master", "rss_mb", " MB")
    row("(d) ours PSS, 2 workers + master", "pss_mb", " MB")
    row("(d) ours start to /health (migrated database)", "start_s", " s")
    row("    ours first start (empty database, migrations)", "first_start_s", " s")
    row("    ours RSS after the rounds (openai loaded)", "rss_loaded_mb", " MB")
    row("    ours PSS after the rounds (openai loaded)", "pss_loaded_mb", " MB")
    if has_litellm:
        row("(d) LiteLLM RSS (single start)", "litellm_rss_mb", " MB")
        row("(d) LiteLLM PSS (single start)", "litellm_pss_mb", " MB")
        row("(d) LiteLLM start to /health/liveliness", "litellm_start_s", " s")
    added = med["b_ours_p50"] - med["b_direct_p50"]
    checks = [
        ("(a) ours / bare Flask", med["a_ours_rps"] / med["a_flask_rps"], f">= {TARGETS['a_flask']:.2f}",
         med["a_ours_rps"] / med["a_flask_rps"] >= TARGETS["a_flask"]),
        ("(b) added latency ms", added, f"<= {TARGETS['b_ms']}", added <= TARGETS["b_ms"]),
        ("(c) req/s / 400", med["c_ours_rps"] / 400, f">= {TARGETS['c']:.2f}", med["c_ours_rps"] / 400 >= TARGETS["c"]),
        ("(d) RSS MB (PSS in brackets)", med["rss_mb"], f"<= {TARGETS['d_mb']:.0f} ({med['pss_mb']:.0f})",
         med["rss_mb"] <= TARGETS["d_mb"]),
        ("(d) start to /health s", med["start_s"], f"<= {TARGETS['d_s']}", med["start_s"] <= TARGETS["d_s"]),
        ("(e) /health answered under slow clients", med["e_ours_health_answered"], f"= {HEALTH_PROBES}",
         min(results["e_ours_health_answered"]) == HEALTH_PROBES),
        ("(e) req/s / 400 under slow clients", med["e_ours_c_rps"] / 400, "(reference)", True),
        ("(f) /v1 / /api/generate req/s (a)", med["a_v1_rps"] / med["a_ours_rps"], ">= 0.90",
         med["a_v1_rps"] / med["a_ours_rps"] >= 0.90),
        ("(f) /v1 / /api/generate added latency (b)", (med["b_v1_p50"] - med["b_direct_p50"]) / added, "<= 1.10",
         (med["b_v1_p50"] - med["b_direct_p50"]) / added <= 1.10),
        ("(f) /v1 / /api/generate req/s (c)", med["c_v1_rps"] / med["c_ours_rps"], ">= 0.90",
         med["c_v1_rps"] / med["c_ours_rps"] >= 0.90),
        ("(g) 2-deployment group / one model req/s (a)", med["a_group_rps"] / med["a_ours_rps"], ">= 0.90",
         med["a_group_rps"] / med["a_ours_rps"] >= 0.90),
    ]
    if has_litellm:
        ratio = med["a_ours_rps"] / med["a_litellm_rps"]
        checks.insert(0, ("(a) ours / LiteLLM", ratio, f">= {TARGETS['a_litellm']:.0f}", ratio >= TARGETS["a_litellm"]))
        checks.insert(3, ("(c) LiteLLM req/s / 400", med["c_litellm_rps"] / 400, "(reference)", True))
    print("\n  ratio / figure                                    value  target")
    for label, value, target, met in checks:
        print(f"  {label:<46} {value:>9.2f}  {target:<14} {'met' if met else 'MISSED'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per wrk run ((c) runs twice as long)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-class", choices=["gthread", "gevent"], default="gthread")
    parser.add_argument("--no-litellm", dest="litellm", action="store_false")
    parser.add_argument("--slow-clients", type=int, default=450, help="for (e)")
    args, _ = parser.parse_known_args()
    if args.litellm and not LITELLM.exists():
        print(f"LiteLLM is not installed ({LITELLM}); run `make bench-litellm` to compare against it")
    with tempfile.TemporaryDirectory(prefix="bench-server-") as tmp:
        results = run(args, Path(tmp))
    report(results, args)


if __name__ == "__main__":
    main()
