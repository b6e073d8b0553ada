"""Import benchmark: a generated chat CSV imported through the API and a Celery worker into PostgreSQL, against
a plain `psql \\copy` of the same file into a bare table of five text columns. Prints rows/s, the ratio and the
worker's peak memory; asserts nothing.

    make bench-import                                      # 1,000,000 rows
    BENCH_IMPORT_ROWS=200000 make bench-import
    BENCH_DATABASE_URL=postgresql+asyncpg://... BENCH_REDIS_URL=redis://... make bench-import

The timed span is the client's: from the start of the upload to the job's `succeeded`, polled every 0.2 s.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from pathlib import Path

from common import Client, generate_chat, psql, running_service

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/annotation_platform_bench_import"
)
ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "1000000"))


def plain_copy(csv_path: Path) -> float:
    psql(
        DATABASE_URL,
        "-c",
        "SET client_min_messages = warning; DROP TABLE IF EXISTS bench_plain_copy; CREATE TABLE bench_plain_copy "
        "(user_id text, turn_id text, turn_text text, reply_to_turn text, thread text)",
    )
    return psql(DATABASE_URL, "-c", f"\\copy bench_plain_copy FROM '{csv_path}' WITH (FORMAT csv, HEADER true)")


def seconds_between(job: dict[str, object], start: str, end: str) -> float:
    return (dt.datetime.fromisoformat(str(job[end])) - dt.datetime.fromisoformat(str(job[start]))).total_seconds()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        csv_path = Path(folder) / "chat.csv"
        started = time.perf_counter()
        generate_chat(csv_path, ROWS)
        size_mb = csv_path.stat().st_size / 1024**2
        print(f"file: {ROWS:,} turns, {size_mb:,.0f} MB, generated in {time.perf_counter() - started:.1f} s")
        with running_service(DATABASE_URL) as service:
            client = Client(service)
            room = client.chat_room("room")
            started = time.perf_counter()
            job_id = client.start_import(room, csv_path)
            uploaded = time.perf_counter() - started
            job = client.wait(job_id)
            seconds = time.perf_counter() - started
            result = job["result"]
            if not isinstance(result, dict) or result["items_created"] != ROWS:
                raise SystemExit(f"the import did not create {ROWS} items: {result}")
            peak = service.worker_peak_mb()
            in_worker = seconds_between(job, "started_at", "finished_at")
            print(
                f"API + worker ({service.broker} broker): {seconds:6.1f} s = {ROWS / seconds:8,.0f} rows/s "
                f"(upload {uploaded:.1f} s, in the worker {in_worker:.1f} s); worker peak memory {peak:.0f} MB"
            )
        copy_seconds = plain_copy(csv_path)
        print(f"psql \\copy, bare table:  {copy_seconds:6.1f} s = {ROWS / copy_seconds:8,.0f} rows/s")
        print(f"import / plain copy: {copy_seconds / seconds:.3f}")


if __name__ == "__main__":
    main()
