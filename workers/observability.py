"""What the workers and beat report: the same logs as the API (JSON in production, redacted), errors to Sentry
when SENTRY_DSN is set, and Prometheus metrics of the tasks they run.

With WORKER_METRICS_PORT set, a worker's main process serves its metrics on that port. Under the prefork pool
the tasks run in child processes: set PROMETHEUS_MULTIPROC_DIR (the compose file and the Kubernetes manifests
do) so that the children's counters are added up there.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import (
    setup_logging,
    task_failure,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_shutdown,
)
from prometheus_client import multiprocess, start_http_server

from annotation_platform.config import get_settings
from annotation_platform.observability.errors import init_sentry
from annotation_platform.observability.logs import configure_logging
from annotation_platform.observability.metrics import (
    MULTIPROC_ENV,
    TASKS_FAILED,
    TaskTimer,
    process_registry,
    task_kind,
)

logger = logging.getLogger(__name__)
settings = get_settings()
timer = TaskTimer()
init_sentry(settings)


@setup_logging.connect
def _configure_logging(**_: Any) -> None:
    configure_logging(settings)


@task_prerun.connect
def _task_started(task_id: str, task: Any, **_: Any) -> None:
    timer.start(task_id, task)


@task_postrun.connect
def _task_ended(task_id: str, task: Any, state: str | None = None, **_: Any) -> None:
    timer.stop(task_id, task, state)


@task_failure.connect
def _task_failed(sender: Any = None, **_: Any) -> None:
    TASKS_FAILED.labels(task_kind(sender)).inc()


@worker_init.connect
def _serve_metrics(**_: Any) -> None:
    if settings.worker_metrics_port:
        start_http_server(settings.worker_metrics_port, registry=process_registry())
        logger.info("worker metrics on port %s", settings.worker_metrics_port)


@worker_process_shutdown.connect
def _forget_process(**_: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
