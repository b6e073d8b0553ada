"""Export benchmark: a generated chat room (imported through the API and a worker) exported through the API as
JSON Lines and as CSV, each against a raw `COPY ... TO STDOUT` of the same rows by psql: `row_to_json` of each
item with its annotations for JSON Lines, `FORMAT csv` of the same side-by-side table for CSV, once with the
server's JIT setting (psql's default) and once with JIT off (as the export's own COPY runs). Prints seconds,
rows/s, the ratios and the worker's peak memory; asserts nothing.

    make bench-export                                      # 1,000,000 items
    BENCH_EXPORT_ROWS=200000 make bench-export

The timed span of an export is the client's: from its POST to the last byte of its download (the worker writes
the file, then the API streams it); the job is polled every 0.05 s.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

from common import Client, generate_chat, psql, running_service

DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/annotation_platform_bench_export"
)
ROWS = int(os.environ.get("BENCH_EXPORT_ROWS", "1000000"))

_ANNOTATIONS = """(SELECT json_agg(json_build_object('type', a.type, 'data', a.data, 'start_offset', a.start_offset,
    'end_offset', a.end_offset, 'author', u.username, 'version', a.version) ORDER BY a.id)
    FROM annotations AS a LEFT JOIN users AS u ON u.id = a.created_by WHERE a.item_id = i.id)"""
_ITEMS = """FROM items AS i JOIN containers AS c ON c.id = i.container_id LEFT JOIN items AS p ON p.id = i.parent_id
    ORDER BY c.name, i.sequence, i.id"""
RAW_JSONL = f"""COPY (SELECT row_to_json(t) FROM (SELECT c.name AS container, c.id AS container_id, i.external_id,
    i.sequence, i.content, p.external_id AS parent, i.metadata, {_ANNOTATIONS} AS annotations {_ITEMS}) AS t)
    TO STDOUT"""
RAW_CSV = f"""COPY (SELECT c.name AS container, i.external_id, i.sequence, i.content, p.external_id AS parent,
    i.metadata ->> 'user_id' AS "metadata.user_id",
    (SELECT a.data ->> 'thread_id' FROM annotations AS a WHERE a.item_id = i.id AND a.type = 'thread'
     ORDER BY a.id LIMIT 1) AS "thread:bench" {_ITEMS}) TO STDOUT (FORMAT csv, HEADER true)"""


def raw_copy(statement: str, *, jit: bool) -> float:
    """psql's COPY to /dev/null, with the server's JIT setting (on by default) or with JIT off, as the export
    runs its own COPY."""
    settings = [] if jit else ["-c", "SET jit = off"]
    return psql(DATABASE_URL, *settings, "-c", " ".join(statement.split()), stdout=subprocess.DEVNULL)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-export-") as folder:
        csv_path = Path(folder) / "chat.csv"
        generate_chat(csv_path, ROWS)
        with running_service(DATABASE_URL) as service:
            started_mb = service.worker_peak_mb()
            client = Client(service)
            room = client.chat_room("room")
            started = time.perf_counter()
            client.wait(client.start_import(room, csv_path))
            print(f"loaded {ROWS:,} turns through the API and a worker in {time.perf_counter() - started:.1f} s")
            psql(DATABASE_URL, "-c", "VACUUM ANALYZE")
            figures: dict[str, float] = {}
            for file_format in ("jsonl", "csv"):
                started = time.perf_counter()
                job_id = client.start_export(file_format)
                client.wait(job_id, every=0.05)  # an export of 100,000 items takes 1 to 3 s: poll finely
                written = time.perf_counter() - started
                size = client.download(job_id)
                figures[file_format] = seconds = time.perf_counter() - started
                print(
                    f"export {file_format:<5} API + worker: {seconds:6.1f} s = {ROWS / seconds:8,.0f} items/s "
                    f"(file written in {written:.1f} s, {size / 1024**2:,.0f} MB)"
                )
            print(
                f"worker peak memory: {service.worker_peak_mb():.0f} MB ({service.broker} broker; "
                f"{started_mb:.0f} MB once started, before any task)"
            )
        for file_format, statement in (("jsonl", RAW_JSONL), ("csv", RAW_CSV)):
            seconds = raw_copy(statement, jit=True)
            without_jit = raw_copy(statement, jit=False)
            print(
                f"raw COPY {file_format:<5} by psql:   {seconds:6.1f} s = {ROWS / seconds:8,.0f} items/s; "
                f"export / raw: {seconds / figures[file_format]:.2f} "
                f"(raw with JIT off: {without_jit:.1f} s, export / raw: {without_jit / figures[file_format]:.2f})"
            )


if __name__ == "__main__":
    main()
