"""The response cache's exact hits: against a miss on the embedded model, and through the server.

(1) In process: a hit against a miss on the embedded llama.cpp model (16 tokens, temperature 0), the whole
    managed path on both sides; target: hits at least 100x faster.
(2) Through the production server (2 workers, SQLite), in the same run and rounds: /api/generate answered from the
    cache, /api/generate missing it on an instant upstream, and the bare Flask echo under the same gunicorn.conf.py;
    target: hits at >= 40% of bare Flask's req/s.
Usage: python -m benchmarks.bench_cache [--rounds 3] [--seconds 4] [--misses 8]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.server_harness import ROOT, Service, free_port, post_script, run_wrk, wait_until_idle
from core.settings import Settings
from models.cache.policy import CachePolicy
from models.model_registry import ModelRegistry

JSON = {"Content-Type": "application/json"}
TARGET_SPEEDUP = 100.0
TARGET_OF_FLASK = 0.40


def in_process(tmp: Path, misses: int) -> dict[str, float]:
    """Median seconds per call: misses (each prompt new) and hits (one prompt again) on the embedded model."""
    url = f"sqlite:///{tmp / 'in-process.db'}"
    settings = Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": url})
    model = ModelRegistry(url, settings=settings).require_model("local")
    model.cache_policy = CachePolicy()
    model.generate("Warm up.", max_tokens=4, temperature=0)
    miss_s, hit_s = [], []
    for index in range(misses):
        started = time.perf_counter()
        answer = model.generate(f"Name a colour, number {index}.", max_tokens=16, temperature=0)
        miss_s.append(time.perf_counter() - started)
        assert answer.cache is None
    for _ in range(200):
        started = time.perf_counter()
        answer = model.generate("Name a colour, number 0.", max_tokens=16, temperature=0)
        hit_s.append(time.perf_counter() - started)
        assert answer.cache == "exact"
    return {"miss_s": statistics.median(miss_s), "hit_s": statistics.median(hit_s)}


def through_server(tmp: Path, rounds: int, seconds: float) -> dict[str, list[float]]:
    """req/s of hits, of misses on an instant upstream, and of the bare Flask echo, in interleaved rounds."""
    services: list[Service] = []

    def start(name: str, argv: list[str], env: dict[str, str] | None = None) -> Service:
        services.append(Service(name, argv, env=env, log=tmp / f"{name}.log"))
        return services[-1]

    try:
        upstream_port, ours_port, echo_port = free_port(), free_port(), free_port()
        start("upstream", [sys.executable, "-m", "benchmarks.upstream", "--port", str(upstream_port)]).wait_http(
            f"http://127.0.0.1:{upstream_port}/health", 30)
        model = {"provider": "openai_compatible", "model": "fake-gpt", "base_url": f"http://127.0.0.1:{upstream_port}/v1",
                 "pricing": {"input_per_million": 0.15, "output_per_million": 0.6}}
        (tmp / "models.yaml").write_text(json.dumps({"models": [
            {"name": "cached", "cache": {"ttl_s": 3600}, **model}, {"name": "uncached", **model}]}))
        gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py")]
        for app, port, database in (("api.app:create_app()", ours_port, "ours.db"),
                                    ("benchmarks.echo_app:create_app()", echo_port, "echo.db")):
            env = {"HOST": "127.0.0.1", "FLASK_PORT": str(port), "DATABASE_URL": f"sqlite:///{tmp / database}",
                   "MODELS_FILE": str(tmp / "models.yaml"), "LOG_LEVEL": "WARNING"}
            start("gunicorn", [*gunicorn, app], env).wait_http(f"http://127.0.0.1:{port}/health")
        generate, echo = f"http://127.0.0.1:{ours_port}/api/generate", f"http://127.0.0.1:{echo_port}/echo"
        cases = {
            "hit": (generate, post_script(tmp / "hit.lua", '{"prompt": "ping", "model": "cached", "temperature": 0}',
                                          JSON)),
            "miss": (generate, post_script(tmp / "miss.lua", '{"prompt": "ping", "model": "uncached"}', JSON)),
            "flask": (echo, post_script(tmp / "echo.lua", '{"prompt": "ping", "model": "cached"}', JSON)),
        }
        for url, script in cases.values():  # warm-up; the first hit request fills the cache
            run_wrk(url, script, 50, 1)
        results: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, (url, script) in cases.items():
                wait_until_idle([service.proc.pid for service in services])
                results[name].append(run_wrk(url, script, 50, seconds).rps)
        return results
    finally:
        for service in reversed(services):
            service.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--misses", type=int, default=8)
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
        local = in_process(Path(tmp), args.misses)
        server = through_server(Path(tmp), args.rounds, args.seconds)
    speedup = local["miss_s"] / local["hit_s"]
    met = "met" if speedup >= TARGET_SPEEDUP else "MISSED"
    print("response cache, exact hits")
    print(f"  (1) embedded model, 16 tokens: miss {local['miss_s'] * 1000:.1f} ms, hit {local['hit_s'] * 1000:.2f} ms "
          f"(medians): {speedup:.0f}x (target >= {TARGET_SPEEDUP:.0f}x: {met})")
    med = {name: statistics.median(values) for name, values in server.items()}
    for name, label in (("hit", "/api/generate, cache hit"), ("miss", "/api/generate, miss (instant upstream)"),
                        ("flask", "bare Flask echo")):
        print(f"  (2) {label:<40} {med[name]:8.0f} req/s  [{', '.join(f'{v:.0f}' for v in server[name])}]")
    share = med["hit"] / med["flask"]
    print(f"  (2) hits / bare Flask {share:.2f} (target >= {TARGET_OF_FLASK:.2f}: "
          f"{'met' if share >= TARGET_OF_FLASK else 'MISSED'}); hits / misses {med['hit'] / med['miss']:.2f}")


if __name__ == "__main__":
    main()
