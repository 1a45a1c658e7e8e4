"""Every dashboard page's server time at 10k and 1M request-log rows, side by side:
`python -m benchmarks.bench_dashboard`. Target: every page under 300 ms at 1M rows.

The rows are those of `bench_metrics` (30 days, three models, 20 users, eight tags, 5% errors), bulk-inserted
with the hourly rollups rebuilt in one pass. Each page is fetched through the app in process (the server's time,
no network), median of `--repeats` after two warm-up rounds, alternating between the two databases.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from flask import url_for

from api.app import create_app
from api.dashboard import NAV
from benchmarks.bench_metrics import seed, time_endpoints
from core.settings import Settings

TARGET_MS = 300.0
# Beyond each menu page: a filtered and a paged request log, and one request's detail.
EXTRA_PATHS = ("/dashboard/requests?model=gemini-2.5-pro&status=error", "/dashboard/requests?user=user-07",
               "/dashboard/requests/bench-000005000")  # in both data sets


def dashboard_paths(url: str) -> tuple[str, ...]:
    """The menu's pages, then the extra ones."""
    app = create_app(Settings.from_env(environ={}, env_file=None, overrides={"DATABASE_URL": url,
                                                                              "LOG_LEVEL": "WARNING"}))
    with app.test_request_context():
        return tuple(url_for(endpoint) for endpoint, _ in NAV) + EXTRA_PATHS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        urls = {count: f"sqlite:///{Path(tmp) / f'dashboard_{count}.db'}" for count in (args.small, args.large)}
        for count, url in urls.items():
            wall, _ = seed(url, count)
            print(f"seeded {count:>9,} rows in {wall:5.1f}s", flush=True)
        paths = dashboard_paths(urls[args.large])
        results = time_endpoints([urls[args.small], urls[args.large]], args.repeats, paths)
    small, large = results[urls[args.small]], results[urls[args.large]]
    print(f"\n{'page (median ms)':<58}{args.small:>10,}{args.large:>12,}{'ratio':>8}  target")
    for path in paths:
        verdict = "ok" if large[path] < TARGET_MS else "OVER"
        print(f"{path:<58}{small[path]:>10.1f}{large[path]:>12.1f}{large[path] / small[path]:>8.2f}  {verdict}")


if __name__ == "__main__":
    main()
