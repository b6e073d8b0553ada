"""API speed benchmark: item pages against a raw asyncpg + orjson baseline, deep pages, the cache and 304s,
annotation writes, and the cost of rate limiting. Prints figures and ratios; asserts nothing.

Loads one container with BENCH_API_ITEMS items (default 1,000,000) and two annotations per item straight
through COPY, then starts, on that database, one process each (uvicorn, production settings, Redis):
the API with the cache, the API without it, the API with Redis rate limits, and the baseline, a minimal ASGI
endpoint running the same keyset query with asyncpg and returning orjson bytes. The load generator is `wrk`
(one thread, BENCH_API_CONNECTIONS connections, BENCH_API_SECONDS a run) on loopback.

    make bench-api
    BENCH_API_ITEMS=200000 BENCH_DATABASE_URL=postgresql+asyncpg://... .venv/bin/python benchmarks/api.py
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
from common import BIN, PASSWORD, ROOT, SECRET_KEY, free_port, recreate_database, redis_url
from sqlalchemy.engine import make_url

from annotation_platform.core.ids import uuid7

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/annotation_platform_bench_api"
)
ITEMS = int(os.environ.get("BENCH_API_ITEMS", "1000000"))
SECONDS = int(os.environ.get("BENCH_API_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_API_CONNECTIONS", "16"))
ROUNDS = int(os.environ.get("BENCH_API_ROUNDS", "3"))
BULK_ROWS = 10_000
# Production settings require encryption keys (a benchmark's own, never a deployment's).
ENCRYPTION_KEYS = "kbench0001:tVcv8QbbJNZpvc5grLcw35NhO4DGBHmA7UHshqTEzwc"
ITEM_COLUMNS = ["id", "container_id", "external_id", "content", "metadata", "sequence", "created_at", "updated_at"]
PAGE_COLUMNS = "id, container_id, external_id, content, metadata, sequence, parent_id, created_at, updated_at"


# --- the baseline: the same keyset page with asyncpg and orjson, nothing else ------------------------------------


def baseline_app(dsn: str) -> object:
    pool: asyncpg.Pool | None = None
    query = f"SELECT {PAGE_COLUMNS} FROM items WHERE container_id = $1 ORDER BY sequence, id LIMIT $2"

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        nonlocal pool
        if scope["type"] == "lifespan":
            while True:
                message = await receive()  # type: ignore[operator]
                if message["type"] == "lifespan.startup":
                    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
                    await send({"type": "lifespan.startup.complete"})  # type: ignore[operator]
                else:
                    await send({"type": "lifespan.shutdown.complete"})  # type: ignore[operator]
                    return
        assert pool is not None  # noqa: S101  # nosec B101
        container_id = uuid.UUID(str(scope["path"]).rsplit("/", 2)[-2])
        rows = await pool.fetch(query, container_id, 51)
        page = [dict(row) for row in rows[:50]]
        for row in page:
            row["metadata"] = orjson.Fragment(row["metadata"])
        last = page[-1] if len(rows) > 50 else None
        cursor = base64.urlsafe_b64encode(orjson.dumps([last["sequence"], str(last["id"])])) if last else None
        body = orjson.dumps({"items": page, "next_cursor": cursor and cursor.decode()}, default=str)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": body})  # type: ignore[operator]

    return app


def serve_baseline(port: int, dsn: str) -> None:
    import uvicorn

    uvicorn.run(baseline_app(dsn), host="127.0.0.1", port=port, access_log=False, log_level="warning")  # type: ignore[arg-type]


# --- loading ---------------------------------------------------------------------------------------------------


async def load(dsn: str, container_id: str, user_id: str, items: int) -> float:
    """Items and two annotations each, by COPY; returns rows per second."""
    connection = await asyncpg.connect(dsn)
    now = datetime.now(UTC)
    container, user = uuid.UUID(container_id), uuid.UUID(user_id)
    started = time.perf_counter()
    try:
        item_ids = [uuid7() for _ in range(items)]
        await connection.copy_records_to_table(
            "items",
            columns=ITEM_COLUMNS,
            records=(
                (item_id, container, f"T{n:08d}", f"turn {n}", f'{{"user": {n % 97}}}', n, now, now)
                for n, item_id in enumerate(item_ids)
            ),
        )
        columns = ["id", "item_id", "container_id", "type", "data", "created_by", "version", "is_gold"]
        columns += ["created_at", "updated_at"]
        await connection.copy_records_to_table(
            "annotations",
            columns=columns,
            records=(
                (uuid7(), item_id, container, kind, f'{{"thread_id": "{n % 11}"}}', user, 1, False, now, now)
                for n, item_id in enumerate(item_ids)
                for kind in ("thread", "topic")
            ),
        )
        await connection.execute("UPDATE containers SET item_count = $1 WHERE id = $2", items, container)
        await connection.execute("ANALYZE items, annotations")
        rate = items * 3 / (time.perf_counter() - started)
        # Vacuumed now, not by autovacuum during the measures: the load passes its insert threshold, and minutes
        # of its work on the other core would slow some measures and not others.
        await connection.execute("VACUUM items, annotations")
    finally:
        await connection.close()
    return rate


# --- processes and wrk -----------------------------------------------------------------------------------------


@dataclass
class Server:
    name: str
    base: str
    process: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def servers(env: dict[str, str], dsn: str) -> Iterator[dict[str, Server]]:
    cli = str(BIN / "annotation-platform")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    variants = {
        "cached": {"CACHE_ENABLED": "true", "RATE_LIMIT_ENABLED": "false"},
        "uncached": {"CACHE_ENABLED": "false", "RATE_LIMIT_ENABLED": "false"},
        "limited": {"CACHE_ENABLED": "true", "RATE_LIMIT_ENABLED": "true", "RATE_LIMIT_DEFAULT": "100000000/minute"},
    }
    started: dict[str, Server] = {}
    try:
        for name, overrides in variants.items():
            port = free_port()
            process = subprocess.Popen([cli, "serve"], env={**env, **overrides, "PORT": str(port)}, cwd=ROOT, **quiet)  # type: ignore[call-overload]
            started[name] = Server(name, f"http://127.0.0.1:{port}", process)
        port = free_port()
        baseline = subprocess.Popen([sys.executable, __file__, "--baseline", str(port), dsn], cwd=ROOT, **quiet)  # type: ignore[call-overload]
        started["baseline"] = Server("baseline", f"http://127.0.0.1:{port}", baseline)
        for server in started.values():
            for _ in range(300):
                try:
                    httpx.get(f"{server.base}/health/live", timeout=5)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
        yield started
    finally:
        for server in started.values():
            server.process.terminate()
        for server in started.values():
            server.process.wait(timeout=30)


@dataclass
class Run:
    rate: float
    p50_ms: float
    p99_ms: float
    errors: int
    server_cpu: float
    wrk_cpu: float

    @property
    def cpu_ms(self) -> float:
        """The server's CPU time a request: comparable within a run even when other work shares the cores."""
        return 1000 * self.server_cpu / self.rate

    def line(self) -> str:
        bad = f", {self.errors} non-2xx/3xx" if self.errors else ""
        return (
            f"{self.rate:,.0f} req/s, p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms "
            f"(CPU: server {self.server_cpu:.0%} of a core = {self.cpu_ms:.2f} ms a request, "
            f"wrk {self.wrk_cpu:.0%}){bad}"
        )


def _ms(text: str) -> float:
    number, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(server: Server, path: str, headers: dict[str, str], script: str | None = None) -> Run:
    command = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    if script:
        command += ["-s", script]
    cpu_before, wrk_before = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    output = subprocess.run([*command, server.base + path], check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - started
    wrk_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu = (wrk_after.ru_utime + wrk_after.ru_stime - wrk_before.ru_utime - wrk_before.ru_stime) / wall
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return Run(
        rate=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1)),  # type: ignore[union-attr]
        p99_ms=_ms(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1)),  # type: ignore[union-attr]
        errors=int(errors.group(1)) if errors else 0,
        server_cpu=(server.cpu_seconds() - cpu_before) / wall,
        wrk_cpu=wrk_cpu,
    )


def post_script(body: dict[str, object]) -> str:
    path = Path(tempfile.mkdtemp()) / "post.lua"
    escaped = orjson.dumps(body).decode().replace("\\", "\\\\").replace("'", "\\'")
    path.write_text(f"wrk.method = 'POST'\nwrk.body = '{escaped}'\nwrk.headers['Content-Type'] = 'application/json'\n")
    return str(path)


# --- the run ---------------------------------------------------------------------------------------------------


def main() -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    redis = redis_url()
    if redis is None:
        raise SystemExit("Redis does not answer at BENCH_REDIS_URL (redis://127.0.0.1:6379/13)")
    asyncio.run(recreate_database(DATABASE_URL))
    dsn = make_url(DATABASE_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    env = {
        **os.environ,
        "ENVIRONMENT": "production",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": redis,
        "DATA_DIR": tempfile.mkdtemp(prefix="bench-api-"),
        "SECRET_KEY": SECRET_KEY,
        "ENCRYPTION_KEYS": ENCRYPTION_KEYS,
        "LOG_LEVEL": "WARNING",
        "ALLOWED_HOSTS": "127.0.0.1",
        "DENIED_BURST_THRESHOLD": "0",
    }
    cli = str(BIN / "annotation-platform")
    subprocess.run([cli, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    with servers(env, dsn) as running:
        api = httpx.Client(base_url=running["uncached"].base + "/api/v1", timeout=600)
        api.post("/auth/register", json={"email": "bench@example.org", "password": PASSWORD}).raise_for_status()
        login = api.post("/auth/jwt/login", data={"username": "bench@example.org", "password": PASSWORD})
        auth = {"Authorization": f"Bearer {login.raise_for_status().json()['access_token']}"}
        api.headers.update(auth)
        user_id = api.get("/users/me").json()["id"]
        project = api.post("/projects", json={"name": "bench"}).raise_for_status().json()["id"]
        container = api.post(f"/projects/{project}/containers", json={"name": "room"}).raise_for_status().json()["id"]
        rate = asyncio.run(load(dsn, container, user_id, ITEMS))
        print(f"loaded {ITEMS:,} items and {2 * ITEMS:,} annotations by COPY: {rate:,.0f} rows/s")

        items = f"/api/v1/containers/{container}/items"
        cursor, position = None, 0
        while position < int(ITEMS * 0.9):
            params = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = api.get(f"/containers/{container}/items", params=params)
            cursor, position = page.json()["next_cursor"], position + 500
        deep = f"{items}?limit=50&cursor={cursor}"
        first = f"{items}?limit=50"

        print(
            f"wrk, 1 thread, {CONNECTIONS} connections, {SECONDS} s a run, median of {ROUNDS} interleaved rounds, "
            f"loopback; one uvicorn process a server; load average before: {os.getloadavg()[0]:.1f}"
        )
        item_id = api.get(f"/containers/{container}/items", params={"limit": 1}).json()["items"][0]["id"]
        etag = httpx.get(running["cached"].base + first, headers=auth).headers["etag"]
        note = post_script({"type": "note", "data": {"text": "a benchmark note"}})
        measures = {
            "baseline": (running["baseline"], f"/containers/{container}/items", {}, None),
            "floor": (running["uncached"], "/health/live", {}, None),
            "page 1": (running["uncached"], first, auth, None),
            "deep": (running["uncached"], deep, auth, None),
            "cached": (running["cached"], first, auth, None),
            "304": (running["cached"], first, {**auth, "If-None-Match": etag}, None),
            "limited": (running["limited"], first, auth, None),
            "post": (running["cached"], f"/api/v1/items/{item_id}/annotations", auth, note),
        }
        # Rounds, each measure once a round, and the median of each: the machine's speed drifts during a run.
        rounds: dict[str, list[Run]] = {name: [] for name in measures}
        for _ in range(ROUNDS):
            for name, (server, path, headers, script) in measures.items():
                rounds[name].append(wrk(server, path, headers, script))
        figures = {name: sorted(runs, key=lambda run: run.rate)[len(runs) // 2] for name, runs in rounds.items()}

        bulk = [{"item_external_id": f"T{n:08d}", "type": "bulk", "data": {"n": n}} for n in range(BULK_ROWS)]
        started = time.perf_counter()
        for _ in range(5):
            api.post(f"/containers/{container}/annotations/bulk", json={"items": bulk}).raise_for_status()
        bulk_rate = 5 * BULK_ROWS / (time.perf_counter() - started)

    print(f"load average after: {os.getloadavg()[0]:.1f}")
    for name, run in figures.items():
        print(f"{name:>14}: {run.line()}")
    base = figures["baseline"]
    print(f"page 1 / baseline throughput: {figures['page 1'].rate / base.rate:.2f} (goal >= 0.6)")
    floor = figures["floor"]
    print(
        f"  the stack's floor, GET /health/live (no authentication, no query): {floor.rate / base.rate:.2f} of the "
        f"baseline ({floor.cpu_ms:.2f} ms a request): no route of this service can do better"
    )
    print(
        f"  page 1 served from the cache / baseline: {figures['cached'].rate / base.rate:.2f} "
        f"({figures['cached'].cpu_ms:.2f} ms a request)"
    )
    page_cpu = figures["page 1"].cpu_ms
    print(f"  by server CPU a request: {base.cpu_ms / page_cpu:.2f} ({page_cpu:.2f} ms against {base.cpu_ms:.2f} ms)")
    print(f"deep (position {position:,}) / page 1 p50 latency: {figures['deep'].p50_ms / figures['page 1'].p50_ms:.2f}")
    print(f"cached / uncached throughput: {figures['cached'].rate / figures['page 1'].rate:.2f} (goal >= 3)")
    print(f"304 / uncached throughput: {figures['304'].rate / figures['page 1'].rate:.2f} (goal >= 3)")
    print(
        f"  by server CPU a request: cached {page_cpu / figures['cached'].cpu_ms:.2f}, "
        f"304 {page_cpu / figures['304'].cpu_ms:.2f}"
    )
    cached = figures["cached"].rate
    overhead_us = (1 / figures["limited"].rate - 1 / cached) * 1e6
    share = figures["limited"].rate / cached
    print(f"rate limits in Redis: {share:.2f} of the unlimited throughput, {overhead_us:+.0f} us a request")
    print(f"POST /items/{{id}}/annotations: {figures['post'].rate:,.0f} rows/s ({CONNECTIONS} connections)")
    print(f"POST .../annotations/bulk, {BULK_ROWS:,} rows a request, one at a time: {bulk_rate:,.0f} rows/s")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--baseline":
        serve_baseline(int(sys.argv[2]), sys.argv[3])
    else:
        main()
