"""What the benchmarks share: a fresh database, the real service (API and a Celery worker) on it, a generated chat
file, and `psql` for the raw-COPY baselines."""

from __future__ import annotations

import csv
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SECRET_KEY = "benchmark-secret-key-0123456789-abcdefghij"
PASSWORD = "a load-test passphrase 1234"
SENTENCE = (
    "na minha opinião a vacinação deveria ser um dever cívico mas obrigatório é forte demais concordo "
    "discordo porque os dados mostram que a imunidade de grupo protege quem não pode ser vacinado"
)
WORDS = SENTENCE.split()


async def recreate_database(database_url: str) -> None:
    """Drops and creates the database of `database_url` (a benchmark's own, never the service's)."""
    url = make_url(database_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, password=url.password, database="postgres"
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{url.database}"')
    finally:
        await admin.close()


def generate_chat(path: Path, rows: int) -> None:
    """Chat turns: a user, an id, a sentence, a reply to a recent turn (three in four), a thread label."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\r\n")
        writer.writerow(["user_id", "turn_id", "turn_text", "reply_to_turn", "thread"])
        for n in range(rows):
            start = (n * 7) % (len(WORDS) - 14)
            text = " ".join(WORDS[start : start + 10 + n % 5])
            reply = f"VAC_R{n // 1000:04d}_{n - 1 - n % 3:07d}" if n % 4 and n > 3 else ""
            writer.writerow([str(1000 + n % 37), f"VAC_R{n // 1000:04d}_{n:07d}", text, reply, str(n % 11)])


def psql(database_url: str, *arguments: str, stdout: int | None = None) -> float:
    """Runs psql against the database of `database_url`; the seconds it took."""
    url = make_url(database_url)
    command = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    command += ["-U", url.username or "postgres", "-d", url.database or "postgres", *arguments]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=stdout)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_url() -> str | None:
    """BENCH_REDIS_URL (default db 13 on the local Redis) when Redis answers, else None (filesystem broker)."""
    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=1)
        client.flushdb()
        client.close()
    except Exception:  # any failure means "no Redis here"
        return None
    return url


def peak_memory_mb(pid: int) -> float:
    """The peak resident memory (VmHWM) of a running process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


@dataclass
class Service:
    """The running API and worker, and a logged-in client's headers."""

    base: str
    api: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    broker: str

    def worker_peak_mb(self) -> float:
        """The highest peak memory among the worker's processes (the prefork child runs the tasks)."""
        pids = [self.worker.pid, *children(self.worker.pid)]
        return max(peak_memory_mb(pid) for pid in pids)


@contextmanager
def running_service(database_url: str) -> Iterator[Service]:
    """`annotation-platform serve` and `celery worker` (concurrency 1) on a fresh, migrated `database_url`."""
    import asyncio

    asyncio.run(recreate_database(database_url))
    port = free_port()
    broker = redis_url()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PORT": str(port),
        "DATA_DIR": tempfile.mkdtemp(prefix="bench-data-"),
        "SECRET_KEY": SECRET_KEY,
        "LOG_LEVEL": "WARNING",
        "HEALTH_CHECK_WORKERS": "true",
    }
    env.pop("REDIS_URL", None)
    if broker:
        env["REDIS_URL"] = broker
    cli = str(BIN / "annotation-platform")
    subprocess.run([cli, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    api = subprocess.Popen([cli, "serve"], env=env, cwd=ROOT, **quiet)  # type: ignore[call-overload]
    worker_command = [str(BIN / "celery"), "-A", "workers.app", "worker", "--concurrency=1", "--loglevel=WARNING"]
    worker = subprocess.Popen([*worker_command, "--without-gossip", "--without-mingle"], env=env, cwd=ROOT, **quiet)  # type: ignore[call-overload]
    try:
        base = f"http://127.0.0.1:{port}"
        # Ready: the API answers, and so does the worker (a Celery ping), so no timed span includes start-up.
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health/ready", timeout=10).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        else:
            raise SystemExit("the API or the worker did not become ready in a minute")
        yield Service(base, api, worker, "redis" if broker else "filesystem")
    finally:
        for process in (api, worker):
            process.terminate()
        for process in (api, worker):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


class Client:
    """A logged-in API client of a `Service`, with the calls the benchmarks make."""

    def __init__(self, service: Service) -> None:
        self.http = httpx.Client(base_url=f"{service.base}/api/v1", timeout=600)
        self.http.post("/auth/register", json={"email": "bench@example.org", "password": PASSWORD})
        login = self.http.post("/auth/jwt/login", data={"username": "bench@example.org", "password": PASSWORD})
        login.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        self.project = self.http.post("/projects", json={"name": "bench"}).raise_for_status().json()["id"]

    def chat_room(self, name: str) -> str:
        body = {"name": name, "type": "chat_room"}
        return str(self.http.post(f"/projects/{self.project}/containers", json=body).raise_for_status().json()["id"])

    def start_import(self, container_id: str, path: Path) -> str:
        with path.open("rb") as file:
            response = self.http.post(
                f"/containers/{container_id}/imports",
                files={"file": (path.name, file, "text/csv")},
                data={"format": "csv"},
            )
        return str(response.raise_for_status().json()["id"])

    def start_export(self, file_format: str) -> str:
        response = self.http.post(f"/projects/{self.project}/exports", json={"format": file_format})
        return str(response.raise_for_status().json()["id"])

    def wait(self, job_id: str, every: float = 0.2) -> dict[str, object]:
        """Polls the job every `every` seconds until it ends; exits unless it succeeded."""
        while True:
            job: dict[str, object] = self.http.get(f"/jobs/{job_id}").raise_for_status().json()
            if job["status"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(every)
        if job["status"] != "succeeded":
            raise SystemExit(f"job {job_id} ended {job['status']}: {job.get('error_message')}")
        return job

    def download(self, job_id: str) -> int:
        """Streams the export to nowhere; the bytes received."""
        received = 0
        with self.http.stream("GET", f"/jobs/{job_id}/download") as response:
            response.raise_for_status()
            for chunk in response.iter_raw(1024 * 1024):
                received += len(chunk)
        return received
