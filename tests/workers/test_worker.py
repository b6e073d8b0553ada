"""A real worker process (`celery -A workers.app worker --pool=solo`) runs imports sent through the API: on the
embedded default (SQLite + the filesystem broker in a temporary DATA_DIR) and on PostgreSQL + Redis (db 11).

Each test starts its own worker on its own queue and stops it; every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.config import Settings
from annotation_platform.main import create_app
from tests.conftest import Api, Team, empty_all_tables, in_ci, make_settings, serve
from tests.data_import.helpers import ROOM, chat_csv, upload

REPO = Path(__file__).resolve().parents[2]
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
WORKER_START_TIMEOUT = 30.0
JOB_TIMEOUT = 60.0


def _redis_or_skip() -> str:
    try:
        redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        reason = f"Redis not reachable at {REDIS_TEST_URL}: {exc}"
        if in_ci():
            pytest.fail(f"{reason} (CI=true: Redis is required)")
        pytest.skip(reason)
    return REDIS_TEST_URL


def worker_env(settings: Settings) -> dict[str, str]:
    """The test's settings as the environment of a worker process (nothing inherited from the caller's)."""
    names = {name.upper() for name in Settings.model_fields}
    env = {key: value for key, value in os.environ.items() if key.upper() not in names}
    env.update(
        ENVIRONMENT=settings.environment.value,
        DATA_DIR=str(settings.data_dir),
        DATABASE_URL=settings.database_url or "",
        REDIS_URL=settings.redis_url or "",
        SECRET_KEY=settings.secret_key or "",
        ENCRYPTION_KEYS=settings.encryption_keys or "",
        QUEUE_NAME=settings.queue_name,
        BROKER_KEY_PREFIX=settings.broker_key_prefix,
        IMPORT_BATCH_SIZE=str(settings.import_batch_size),
        JOB_HEARTBEAT_TIMEOUT_SECONDS=str(settings.job_heartbeat_timeout_seconds),
        SMTP_HOST=settings.smtp_host or "",
        SMTP_PORT=str(settings.smtp_port),
        SECURITY_ALERT_EMAILS=str(settings.security_alert_emails).lower(),
        SECURITY_ALERT_WEBHOOK_URL=settings.security_alert_webhook_url or "",
        PYTHONUNBUFFERED="1",
    )
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if name.startswith("webhook_") and value is not None:
            env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def answers_ping(queue: Any) -> bool:
    """Whether a worker answered. The folder broker writes a message file before its content, so a reader can
    find it empty: that is a worker still answering, not an error."""
    try:
        return bool(queue.control.ping(timeout=0.5))
    except ValueError:
        return False


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-5000:]


@dataclass
class Stack:
    app: Any
    http: httpx.AsyncClient
    api: Api
    settings: Settings
    tmp: Path
    workers: list[Worker]

    def start_worker(self) -> Worker:
        log = self.tmp / f"worker-{len(self.workers)}.log"
        with log.open("ab") as output:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "workers.app",
                    "worker",
                    "--pool=solo",
                    "--loglevel=INFO",
                    "-Q",
                    self.settings.queue_name,
                    "-n",
                    f"test-{uuid.uuid4().hex[:6]}@%h",
                    "--without-mingle",
                    "--without-gossip",
                ],
                cwd=REPO,
                env=worker_env(self.settings),
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        worker = Worker(process, log)
        self.workers.append(worker)
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while not answers_ping(self.app.state.queue):
            assert process.poll() is None, f"the worker exited with {process.returncode}:\n{worker.output()}"
            assert time.monotonic() < deadline, (
                f"the worker did not answer in {WORKER_START_TIMEOUT}s:\n{worker.output()}"
            )
        return worker

    async def wait_for(
        self, job_id: str, by: Any, *, statuses: tuple[str, ...], within: float = JOB_TIMEOUT
    ) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            job = (await self.http.get(f"/api/v1/jobs/{job_id}", headers=by.headers)).json()
            if job["status"] in statuses:
                return dict(job)
            logs = "\n".join(worker.output() for worker in self.workers)
            assert time.monotonic() < deadline, f"job still {job['status']} after {within}s: {job}\n{logs}"
            await _sleep(0.05)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


def _stop(worker: Worker) -> None:
    if worker.process.poll() is None:
        worker.process.send_signal(signal.SIGTERM)
        try:
            worker.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            worker.process.wait(timeout=10)


@asynccontextmanager
async def worker_stack(
    backend: str, database_url: str, engine: AsyncEngine, tmp_path: Path, **settings: Any
) -> AsyncIterator[Stack]:
    """A served app on emptied tables, with its own queue and broker keys (Redis on PostgreSQL, else the folder
    broker); the workers a test starts are stopped and its broker keys removed afterwards."""
    await empty_all_tables(engine)
    tag = uuid.uuid4().hex[:8]
    app_settings = make_settings(
        database_url,
        tmp_path / "data",
        redis_url=_redis_or_skip() if backend == "postgresql" else None,
        queue_name=f"test-{tag}",
        broker_key_prefix=f"annotation-platform-test-{tag}:",
        **settings,
    )
    app = create_app(app_settings)
    workers: list[Worker] = []
    try:
        async with serve(app) as http:
            yield Stack(app, http, Api(http, app.state.engine), app_settings, tmp_path, workers)
    finally:
        for worker in workers:
            _stop(worker)
        if app_settings.redis_url:
            client = redis.Redis.from_url(app_settings.redis_url)
            keys = list(client.scan_iter(f"{app_settings.broker_key_prefix}*"))
            if keys:
                client.delete(*keys)


@pytest.fixture
async def stack(backend: str, database_url: str, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Stack]:
    async with worker_stack(
        backend,
        database_url,
        engine,
        tmp_path,
        health_check_workers=True,
        import_batch_size=100,
        job_heartbeat_timeout_seconds=2,
    ) as running:
        yield running


async def _team(stack: Stack) -> Team:
    api = stack.api
    owner = await api.user("owner")
    annotator = await api.user("annotator")
    project = await api.project(owner, name="Debates")
    await api.add_member(project, owner, annotator, "annotator")
    container = await api.container(project, owner, name="VAC_R10")
    return Team(owner, owner, owner, annotator, owner, owner, project, container, [])


async def _count(stack: Stack, table: str) -> int:
    async with stack.app.state.engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


def big_room(turns: int) -> bytes:
    rows = [
        ("7", f"T{index:06d}", f"turn number {index}, with some words", "", str(index % 9)) for index in range(turns)
    ]
    return chat_csv(rows)


async def test_a_worker_runs_an_import_sent_through_the_api(stack: Stack) -> None:
    stack.start_worker()
    team = await _team(stack)
    ready = await stack.http.get("/health/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["workers"]["status"] == "ok"

    response = await upload(stack.http, team.container, team.owner, chat_csv(ROOM), annotator=team.annotator.username)
    assert response.status_code == 202, response.text
    job = await stack.wait_for(response.json()["id"], team.owner, statuses=("succeeded", "failed"))

    assert job["status"] == "succeeded", job
    assert job["result"]["items_created"] == 4
    assert job["attempts"] == 1
    assert await _count(stack, "items") == 4
    assert await _count(stack, "annotations") == 3


async def test_readiness_fails_without_a_worker(stack: Stack) -> None:
    ready = await stack.http.get("/health/ready")

    assert ready.status_code == 503
    assert ready.json()["checks"]["workers"]["status"] == "failing"


async def test_a_running_import_reports_its_progress_as_it_goes(stack: Stack) -> None:
    """On SQLite too, where the import holds the only write lock (its progress travels beside the database)."""
    stack.start_worker()
    team = await _team(stack)
    response = await upload(stack.http, team.container, team.owner, big_room(20_000))
    job_id = response.json()["id"]
    seen: list[int] = []
    deadline = time.monotonic() + JOB_TIMEOUT
    while True:
        job = (await stack.http.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers)).json()
        if job["status"] == "running" and job["progress"]["done"] > 0:
            seen.append(job["progress"]["done"])
            assert job["progress"]["done"] <= job["progress"]["total"]
        if job["status"] not in ("queued", "running"):
            break
        assert time.monotonic() < deadline, job
        await _sleep(0.05)

    assert job["status"] == "succeeded", job
    assert seen, "the import never showed progress while it ran"
    assert seen == sorted(seen)
    assert seen[0] < 20_000
    assert job["progress"] == {"done": 20_000, "total": 20_000}


async def test_a_running_import_is_cancelled_within_seconds_and_leaves_nothing(stack: Stack) -> None:
    stack.start_worker()
    team = await _team(stack)
    response = await upload(stack.http, team.container, team.owner, big_room(20_000))
    job_id = response.json()["id"]
    await stack.wait_for(job_id, team.owner, statuses=("running", "succeeded"), within=30)

    cancel = await stack.http.post(f"/api/v1/jobs/{job_id}/cancel", headers=team.owner.headers)
    asked = time.monotonic()
    job = await stack.wait_for(job_id, team.owner, statuses=("cancelled", "succeeded", "failed"), within=10)

    assert cancel.status_code == 200, cancel.text
    assert job["status"] == "cancelled", f"the import ended before the cancel reached it: {job}"
    assert time.monotonic() - asked < 3
    assert await _count(stack, "items") == 0
    assert await _count(stack, "annotations") == 0


async def test_a_worker_killed_mid_import_leaves_nothing_and_the_job_fails_retryable(stack: Stack) -> None:
    first = stack.start_worker()
    team = await _team(stack)
    response = await upload(stack.http, team.container, team.owner, big_room(20_000))
    job_id = response.json()["id"]
    await stack.wait_for(job_id, team.owner, statuses=("running", "succeeded"), within=30)
    await _sleep(0.3)

    first.process.send_signal(signal.SIGKILL)
    first.process.wait(timeout=10)
    job = (await stack.http.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers)).json()
    assert job["status"] == "running", f"the import was not running when the worker was killed: {job}"
    assert await _count(stack, "items") == 0, "half an import is visible"

    # The reaper (beat runs it every REAPER_INTERVAL_SECONDS) fails the job once the heartbeat is 2 s old.
    stack.start_worker()
    await _sleep(2.5)
    stack.app.state.queue.send_task("jobs.reap")
    job = await stack.wait_for(job_id, team.owner, statuses=("failed",), within=15)
    assert job["error_message"].startswith("worker lost")
    assert await _count(stack, "items") == 0

    retry = await stack.http.post(f"/api/v1/jobs/{job_id}/retry", headers=team.owner.headers)
    assert retry.status_code == 202, retry.text
    job = await stack.wait_for(job_id, team.owner, statuses=("succeeded", "failed"), within=JOB_TIMEOUT)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert await _count(stack, "items") == 20_000
