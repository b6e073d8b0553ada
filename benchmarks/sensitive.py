"""The cost of encryption at rest: the same generated chat room imported into, and exported as `jsonl` and `csv`
from, a plain project and a sensitive one, through the API and a Celery worker on PostgreSQL. Prints each time
and the ratio sensitive / plain; asserts nothing.

    make bench-sensitive                                   # 20,000 rows
    BENCH_SENSITIVE_ROWS=100000 BENCH_REDIS_URL=redis://127.0.0.1:6379/11 make bench-sensitive

Each figure is the client's: the import from the start of the upload to the job's `succeeded`; an export from
its `POST` to the last byte of the download (a sensitive project's file is decrypted as it streams).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from common import Client, generate_chat, running_service

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/annotation_platform_bench_sensitive"
)
ROWS = int(os.environ.get("BENCH_SENSITIVE_ROWS", "20000"))
ROUNDS = int(os.environ.get("BENCH_SENSITIVE_ROUNDS", "2"))


def timed_import(client: Client, csv_path: Path) -> float:
    room = client.chat_room(f"room-{time.monotonic_ns()}")
    started = time.perf_counter()
    client.wait(client.start_import(room, csv_path))
    return time.perf_counter() - started


def timed_export(client: Client, file_format: str) -> tuple[float, int]:
    started = time.perf_counter()
    job_id = client.start_export(file_format)
    client.wait(job_id)
    received = client.download(job_id)
    return time.perf_counter() - started, received


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-sensitive-") as folder:
        csv_path = Path(folder) / "chat.csv"
        generate_chat(csv_path, ROWS)
        print(f"file: {ROWS:,} turns, {csv_path.stat().st_size / 1024**2:,.1f} MB")
        with running_service(DATABASE_URL) as service:
            client = Client(service)
            plain = client.project
            sensitive = client.http.post("/projects", json={"name": "bench-sensitive", "sensitive": True})
            projects = {"plain": plain, "sensitive": str(sensitive.raise_for_status().json()["id"])}
            best: dict[tuple[str, str], float] = {}
            sizes: dict[tuple[str, str], int] = {}
            # One room per project (the first round's import); later rounds time the import into a second room
            # that is then deleted, so every export reads the same ROWS items. Rounds alternate the projects.
            for round_number in range(ROUNDS):
                for kind, project in projects.items():
                    client.project = project
                    seconds = timed_import(client, csv_path)
                    if round_number:
                        rooms = client.http.get(f"/projects/{project}/containers").raise_for_status().json()
                        client.http.delete(f"/containers/{rooms['items'][-1]['id']}").raise_for_status()
                    best[(kind, "import")] = min(seconds, best.get((kind, "import"), seconds))
                    for file_format in ("jsonl", "csv"):
                        seconds, size = timed_export(client, file_format)
                        best[(kind, file_format)] = min(seconds, best.get((kind, file_format), seconds))
                        sizes[(kind, file_format)] = size
            print(f"best of {ROUNDS} ({service.broker} broker):")
            print(f"{'what':<8} {'plain':>9} {'sensitive':>10} {'ratio':>6}")
            for what in ("import", "jsonl", "csv"):
                ratio = best[("sensitive", what)] / best[("plain", what)]
                print(f"{what:<8} {best[('plain', what)]:8.2f}s {best[('sensitive', what)]:9.2f}s {ratio:6.2f}")
            for file_format in ("jsonl", "csv"):
                same = sizes[("plain", file_format)] == sizes[("sensitive", file_format)]
                print(f"{file_format} downloads: {sizes[('plain', file_format)]:,} bytes, equal sizes: {same}")


if __name__ == "__main__":
    main()
