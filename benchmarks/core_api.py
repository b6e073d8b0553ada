"""Core API benchmark: bulk item inserts, and a page of items at the start and deep in a large container.

Starts the real server (uvicorn, one process) on PostgreSQL, loads a container through the bulk endpoint, then
measures pages with a concurrent httpx client. Prints figures and ratios; asserts nothing.

    make bench-core            # 200,000 items on postgresql+asyncpg://postgres@127.0.0.1/annotation_platform_bench
    BENCH_ITEMS=50000 BENCH_DATABASE_URL=... .venv/bin/python benchmarks/core_api.py
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from common import recreate_database

ROOT = Path(__file__).resolve().parents[1]
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/annotation_platform_bench"
)
ITEMS = int(os.environ.get("BENCH_ITEMS", "200000"))
BATCH = 10_000
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "2000"))
CONCURRENCY = 8
PASSWORD = "a load-test passphrase 1234"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def measure_pages(client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> tuple[float, list[float]]:
    latencies: list[float] = []
    remaining = REQUESTS

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            response = await client.get(url, headers=headers)
            latencies.append(time.perf_counter() - started)
            response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return REQUESTS / (time.perf_counter() - started), latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] * 1000


async def run(base: str) -> None:
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        await client.post("/api/v1/auth/register", json={"email": "bench@example.org", "password": PASSWORD})
        login = await client.post(
            "/api/v1/auth/jwt/login", data={"username": "bench@example.org", "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        project = (await client.post("/api/v1/projects", json={"name": "bench"}, headers=headers)).json()
        container = (
            await client.post(f"/api/v1/projects/{project['id']}/containers", json={"name": "room"}, headers=headers)
        ).json()
        items_url = f"/api/v1/containers/{container['id']}/items"

        started = time.perf_counter()
        for offset in range(0, ITEMS, BATCH):
            rows = [
                {
                    "external_id": f"T{n:08d}",
                    "content": f"turn {n}: uma frase de exemplo",
                    "metadata": {"user_id": n % 97},
                }
                for n in range(offset, min(ITEMS, offset + BATCH))
            ]
            response = await client.post(f"{items_url}/bulk", json={"items": rows}, headers=headers)
            response.raise_for_status()
        insert_seconds = time.perf_counter() - started
        print(
            f"bulk insert: {ITEMS} items in {insert_seconds:.1f} s = {ITEMS / insert_seconds:,.0f} items/s "
            f"(batches of {BATCH}, one request at a time)"
        )

        deep_cursor = None
        position = 0
        while position < int(ITEMS * 0.9):
            page = (
                await client.get(
                    items_url,
                    params={"limit": 500, "cursor": deep_cursor} if deep_cursor else {"limit": 500},
                    headers=headers,
                )
            ).json()
            deep_cursor = page["next_cursor"]
            position += 500

        first_rate, first = await measure_pages(client, f"{items_url}?limit=50", headers)
        deep_rate, deep = await measure_pages(client, f"{items_url}?limit=50&cursor={deep_cursor}", headers)
        print(
            f"GET items?limit=50, page 1:            {first_rate:,.0f} req/s, "
            f"p50 {percentile(first, 0.5):.1f} ms, p99 {percentile(first, 0.99):.1f} ms"
        )
        print(
            f"GET items?limit=50 at position {position:,}: {deep_rate:,.0f} req/s, "
            f"p50 {percentile(deep, 0.5):.1f} ms, p99 {percentile(deep, 0.99):.1f} ms"
        )
        print(
            f"deep/first median latency ratio: {statistics.median(deep) / statistics.median(first):.2f} "
            f"({REQUESTS} requests each, {CONCURRENCY} concurrent, client and server on the same 2 cores)"
        )


def main() -> None:
    asyncio.run(recreate_database(DATABASE_URL))
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": DATABASE_URL,
        "PORT": str(port),
        "DATA_DIR": tempfile.mkdtemp(),
        "SECRET_KEY": "benchmark-secret-key-0123456789-abcdefghij",
        "LOG_LEVEL": "WARNING",
    }
    cli = str(Path(sys.executable).with_name("annotation-platform"))
    subprocess.run([cli, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    server = subprocess.Popen([cli, "serve"], env=env, cwd=ROOT, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health/live").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        asyncio.run(run(base))
    finally:
        server.terminate()
        server.wait(timeout=10)


if __name__ == "__main__":
    main()
