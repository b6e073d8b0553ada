"""Prometheus metrics: what every process counts, and what `GET /metrics` reads from the database and the broker.

Under `serve --prod` several API processes serve requests; gunicorn's config points `PROMETHEUS_MULTIPROC_DIR`
at a fresh folder, each process writes its counters there and `/metrics` adds them all up, whichever process
answers the scrape. Without that variable (`make run`, tests) the process's own registry is served.
Request metrics are labelled by route template (`/api/v1/projects/{project_id}`), never by raw path.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annotation_platform.config import Settings
from annotation_platform.core.middleware import route_template
from annotation_platform.core.queue import broker_folders

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
if _folder := os.environ.get(MULTIPROC_ENV):
    # The counters below are files in this folder (multiprocess mode); it must exist before they are made.
    Path(_folder).mkdir(parents=True, exist_ok=True)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
JOB_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0)

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered, by method, route template, status.", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "Time from request to the end of the response, by method and route template.",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "http_requests_in_flight", "Requests being served now (all API processes).", multiprocess_mode="livesum"
)
DB_POOL_CHECKED_OUT = Gauge(
    "db_pool_checked_out_connections",
    "Database connections taken from the pools now (all processes).",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "db_pool_size_connections", "Configured pool size, summed over the processes.", multiprocess_mode="livesum"
)
TASKS_STARTED = Counter("celery_tasks_started_total", "Tasks a worker started, by kind (task name).", ["kind"])
TASKS_FAILED = Counter("celery_tasks_failed_total", "Tasks that raised, by kind (task name).", ["kind"])
TASK_DURATION = Histogram(
    "celery_task_duration_seconds",
    "Time a task ran, by kind (task name) and outcome.",
    ["kind", "outcome"],
    buckets=JOB_BUCKETS,
)

router = APIRouter(tags=["health"])


class MetricsMiddleware:
    """Counts requests and their latency by route template, and the requests in flight."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = [500]

        async def send_recording_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
            await send(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            HTTP_IN_FLIGHT.dec()
            route = route_template(scope)
            HTTP_REQUESTS.labels(scope["method"], route, str(status_holder[0])).inc()
            HTTP_LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)


def instrument_engine(engine: AsyncEngine, settings: Settings) -> None:
    """Keeps the pool gauges true for this engine: +1 on checkout, -1 on checkin."""
    pool = engine.sync_engine.pool
    DB_POOL_SIZE.inc(settings.database_pool_size if hasattr(pool, "size") else 0)
    event.listen(pool, "checkout", lambda *_: DB_POOL_CHECKED_OUT.inc())
    event.listen(pool, "checkin", lambda *_: DB_POOL_CHECKED_OUT.dec())


def process_registry() -> CollectorRegistry:
    """The counters of every process (multiprocess mode), or this process's own registry."""
    folder = os.environ.get(MULTIPROC_ENV)
    if not folder:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    registry.register(ProcessesCollector(folder))
    return registry


class ProcessesCollector(Collector):
    """CPU and memory of every live process that writes to the multiprocess folder, labelled by pid."""

    _PID = re.compile(r"_(\d+)\.db$")

    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    def pids(self) -> set[int]:
        found = {int(match.group(1)) for path in self.folder.glob("*.db") if (match := self._PID.search(path.name))}
        return {pid for pid in found | {os.getpid()} if Path(f"/proc/{pid}").exists()}

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for pid in sorted(self.pids()):
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect():  # type: ignore[misc]
                merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        return families.values()


async def queue_depth(settings: Settings, redis: Redis | None) -> float | None:
    """Messages waiting in the API's Celery queue (Redis list length, or files of the embedded broker)."""
    if redis is not None:
        try:
            return float(await redis.llen(f"{settings.broker_key_prefix}{settings.queue_name}"))
        except (RedisError, OSError):
            return None
    messages, _control = broker_folders(settings)
    suffix = f"{settings.queue_name}.msg"
    return float(sum(1 for path in messages.iterdir() if path.name.partition(".")[2] == suffix))


async def database_gauges(engine: AsyncEngine) -> tuple[list[tuple[str, str, int]], float | None]:
    """Jobs per kind and status, and the newest backup's time (epoch seconds; None when there is none)."""
    async with engine.connect() as connection:
        jobs = await connection.execute(text("SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status"))
        counts = [(str(kind), str(status), int(count)) for kind, status, count in jobs]
        newest = (await connection.execute(text("SELECT MAX(created_at) FROM backups"))).scalar()
    if isinstance(newest, str):  # SQLite returns the text it stored
        newest = datetime.fromisoformat(newest)
    if newest is None:
        return counts, None
    return counts, (newest if newest.tzinfo else newest.replace(tzinfo=UTC)).timestamp()


async def scrape_time_registry(request: Request) -> CollectorRegistry:
    """What is read when Prometheus asks: queue depth, jobs by kind and status, the last backup's age."""
    settings: Settings = request.app.state.settings
    registry = CollectorRegistry()
    scrape_errors = Gauge(
        "annotation_scrape_errors", "Sources /metrics could not read during this scrape.", ["source"], registry=registry
    )
    depth = await queue_depth(settings, request.app.state.redis)
    if depth is None:
        scrape_errors.labels("broker").set(1)
    else:
        Gauge("celery_queue_length", "Tasks waiting in the broker's queue.", ["queue"], registry=registry).labels(
            settings.queue_name
        ).set(depth)
    try:
        counts, newest_backup = await database_gauges(request.app.state.engine)
    except (SQLAlchemyError, OSError):
        scrape_errors.labels("database").set(1)
        return registry
    jobs = Gauge("annotation_jobs", "Jobs in the table, by kind and status.", ["kind", "status"], registry=registry)
    for kind, status, count in counts:
        jobs.labels(kind, status).set(count)
    if newest_backup is not None:
        Gauge("annotation_last_backup_timestamp_seconds", "When the newest backup was taken.", registry=registry).set(
            newest_backup
        )
    return registry


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format: every process's counters, then what this scrape read."""
    body = generate_latest(process_registry()) + generate_latest(await scrape_time_registry(request))
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def task_kind(task: Any) -> str:
    return str(getattr(task, "name", None) or "unknown")


class TaskTimer:
    """Start times of the tasks running in this worker process, to observe their duration when they end."""

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    def start(self, task_id: str, task: Any) -> None:
        TASKS_STARTED.labels(task_kind(task)).inc()
        self._started[task_id] = time.perf_counter()

    def stop(self, task_id: str, task: Any, state: str | None) -> None:
        started = self._started.pop(task_id, None)
        if started is not None:
            outcome = "success" if state == "SUCCESS" else "failure"
            TASK_DURATION.labels(task_kind(task), outcome).observe(time.perf_counter() - started)
