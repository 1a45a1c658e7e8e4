"""Production server: `gunicorn -c gunicorn.conf.py 'api.app:create_app()'` (also `make serve`).

Every value comes from `core.settings` (HOST, FLASK_PORT, WEB_CONCURRENCY, WEB_THREADS, WEB_WORKER_CLASS,
WEB_GRACEFUL_TIMEOUT, WEB_PRELOAD). The default is gthread: 2 processes x 1000 threads hold 200 provider
calls in flight on 2 cores, however unevenly the kernel spreads connections over the workers, while
hundreds of clients that send their request bodies slowly hold a thread each (gthread reads a body in the
request's thread; gunicorn has no buffering of its own): with 450 such clients connected, /health still
answers and (c) keeps its throughput (`make bench-server`, case (e)). More slow clients than threads would
still take them all; in front of untrusted clients, a buffering proxy (nginx) is the complete answer. gevent
(WEB_WORKER_CLASS=gevent) shrugs off slow clients but, measured once, held 200 calls in flight at 150 req/s
where gthread held 320. The app is imported once in the master and forked (`preload_app`), so workers
share its memory and start together; each worker then drops the database connections it inherited.
SIGTERM stops accepting and gives in-flight requests WEB_GRACEFUL_TIMEOUT seconds to finish.
"""

from __future__ import annotations

from typing import Any

from core.settings import get_settings

_settings = get_settings()

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.web_workers
worker_class = _settings.web_worker_class
threads = _settings.web_threads  # gthread: requests (and provider calls) in flight per process
worker_connections = max(1000, _settings.web_threads * 2)  # gevent: concurrent requests; gthread: keep-alive
graceful_timeout = _settings.web_graceful_timeout
timeout = 30  # heartbeat: a worker whose main loop stalls this long is restarted (busy threads do not stall it)
keepalive = 5
backlog = 2048
preload_app = _settings.web_preload and worker_class == "gthread"
accesslog = None  # the app logs one structured line per request (api.request_context)
errorlog = "-"
loglevel = _settings.log_level.lower()
proc_name = "ai-model-manager"

if worker_class == "gevent":  # patch before anything (the app included) creates sockets, locks or threads
    from gevent import monkey

    monkey.patch_all()


def post_fork(server: Any, worker: Any) -> None:
    """A forked worker must not reuse the master's pooled database connections."""
    from storage.database import reset_after_fork

    reset_after_fork()
