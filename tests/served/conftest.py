"""One real server for the tests of what clients see: `annotation-platform serve --prod` (one process) on a free
port and a Celery worker, on their own SQLite database and filesystem broker (the embedded default), shared by
the session. The OpenAPI document does not depend on the database, so one backend is enough here."""

from __future__ import annotations

import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from annotation_platform.config import Settings
from annotation_platform.core.queue import create_celery
from tests.conftest import PASSWORD, make_settings, migrate
from tests.test_serve_prod import STOP_TIMEOUT, production_server
from tests.workers.test_worker import WORKER_START_TIMEOUT, Worker, _stop, answers_ping, worker_env

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    url: str
    settings: Settings
    env: dict[str, str]

    def register(self, http: httpx.Client) -> tuple[str, str]:
        """A new account, logged in: (email, access token)."""
        email = f"client-{secrets.token_hex(4)}@example.org"
        registered = http.post(f"{self.url}/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert registered.status_code == 201, registered.text
        login = http.post(f"{self.url}/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return email, str(login.json()["access_token"])


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("served")
    database_url = f"sqlite+aiosqlite:///{tmp / 'served.db'}"
    migrate(database_url)
    settings = make_settings(database_url, tmp / "data", queue_name=f"served-{uuid.uuid4().hex[:8]}")
    env = {
        **worker_env(settings),
        "RATE_LIMIT_ENABLED": "false",
        "LOGIN_LOCKOUT_ATTEMPTS": "0",
        "HEALTH_CHECK_WORKERS": "false",
    }
    with production_server(database_url, tmp, WEB_CONCURRENCY="1", **env) as server:
        yield Served(server.url, settings, env)
        # A graceful stop: killing gunicorn's master outright would leave its worker process behind.
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=STOP_TIMEOUT)


@pytest.fixture(scope="session")
def served_worker(served: Served, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    """A worker for the served app's jobs (imports, exports)."""
    log = tmp_path_factory.mktemp("served-worker") / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "celery", "-A", "workers.app", "worker", "--pool=solo", "--loglevel=INFO"),
                *("-Q", served.settings.queue_name, "-n", f"served-{uuid.uuid4().hex[:6]}@%h"),
                *("--without-mingle", "--without-gossip"),
            ],
            cwd=REPO,
            env=served.env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    worker = Worker(process, log)
    queue = create_celery(served.settings)
    try:
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while not answers_ping(queue):
            assert process.poll() is None, f"the worker exited:\n{worker.output()}"
            assert time.monotonic() < deadline, f"the worker did not answer:\n{worker.output()}"
        yield worker
    finally:
        _stop(worker)
