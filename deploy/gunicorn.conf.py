"""gunicorn configuration for `annotation-platform serve --prod`: uvicorn workers, one per CPU.

Every value comes from the application's settings (environment variables, see docs/deployment.md), so the
same image runs anywhere. On SIGTERM gunicorn stops accepting connections and each worker finishes the
requests it is serving (up to GRACEFUL_TIMEOUT_SECONDS) before it exits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from annotation_platform.config import get_settings
from annotation_platform.observability.logs import configure_logging

settings = get_settings()

wsgi_app = "annotation_platform.main:create_app()"
worker_class = "uvicorn_worker.UvicornWorker"
bind = [f"{settings.host}:{settings.port}"]
workers = settings.web_concurrency or max(2, os.cpu_count() or 1)
# An async worker serves many requests at once; a worker that stops answering gunicorn's heartbeat is hung.
timeout = settings.worker_timeout_seconds
graceful_timeout = settings.graceful_timeout_seconds
keepalive = settings.keepalive_seconds
# Recycle workers now and then (bounded memory growth), not all at once.
max_requests = 10_000
max_requests_jitter = 1_000
# X-Forwarded-For/-Proto are believed only from TRUSTED_PROXIES (the reverse proxy), the same list the app's
# client_ip uses; from anyone else they are ignored.
forwarded_allow_ips = settings.trusted_proxies
# The application's middleware writes the access log (JSON, with request id, user id, route and duration).
accesslog = None
errorlog = "-"
loglevel = settings.log_level.lower()
proc_name = "annotation-platform"
# No runtime control socket: the container's home is not writable, and signals do the same job.
control_socket_disable = True
# /tmp may be a slow disk in containers; heartbeat files belong in memory.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108 - gunicorn's documented advice


TEMPORARY_METRICS_PREFIX = "annotation-platform-metrics-"


def on_starting(server: Any) -> None:
    """Logs as the application does, and gives the workers one fresh folder for their Prometheus counters."""
    configure_logging(settings)
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder:
        shutil.rmtree(folder, ignore_errors=True)  # counters of a previous run would be added to this one's
        Path(folder).mkdir(parents=True, exist_ok=True)
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=TEMPORARY_METRICS_PREFIX)


def post_worker_init(worker: Any) -> None:
    configure_logging(settings)


def child_exit(server: Any, worker: Any) -> None:
    """A dead worker's live gauges (in-flight requests, pool) must not be added up any more."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Removes the metrics folder this server made for itself (one given in the environment is left)."""
    folder = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""))
    if folder.name.startswith(TEMPORARY_METRICS_PREFIX):
        shutil.rmtree(folder, ignore_errors=True)
