"""Import benchmark: a generated chat CSV imported by `run_import` (the worker's service, no HTTP) on PostgreSQL,
once with the batched executemany writer (the SQLite path, the PostgreSQL path before COPY) and once with the
COPY writer, each into a freshly migrated database, against a plain `psql \\copy` of the same file into a bare
table of five text columns. Prints rows/s, ratios and each import's peak memory (VmHWM); asserts nothing.

    make bench-import                                    # 1,000,000 rows
    BENCH_IMPORT_ROWS=200000 make bench-import           # what docs/performance.md reports
    BENCH_DATABASE_URL=postgresql+asyncpg://... BENCH_IMPORT_MODES=copy .venv/bin/python benchmarks/imports.py
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from common import recreate_database
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/annotation_platform_bench_import"
)
ROWS = int(os.environ.get("BENCH_IMPORT_ROWS", "1000000"))
MODES = os.environ.get("BENCH_IMPORT_MODES", "executemany,copy").split(",")
SENTENCE = (
    "na minha opinião a vacinação deveria ser um dever cívico mas obrigatório é forte demais concordo "
    "discordo porque os dados mostram que a imunidade de grupo protege quem não pode ser vacinado"
)
WORDS = SENTENCE.split()
SECRET_KEY = "bench-secret-key-that-is-long-enough-0123456789"
NO_PASSWORD = "-"


def generate(path: Path, rows: int) -> None:
    """Chat turns of about 160 bytes: a user, an id, a sentence, a reply to a recent turn (or none), a thread."""
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, lineterminator="\r\n")
        writer.writerow(["user_id", "turn_id", "turn_text", "reply_to_turn", "thread"])
        for n in range(rows):
            start = (n * 7) % (len(WORDS) - 14)
            text = " ".join(WORDS[start : start + 10 + n % 5])
            reply = f"VAC_R{n // 1000:04d}_{n - 1 - n % 3:07d}" if n % 4 and n > 3 else ""
            writer.writerow([str(1000 + n % 37), f"VAC_R{n // 1000:04d}_{n:07d}", text, reply, str(n % 11)])


def peak_memory_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def import_once(csv_path: Path, size: int, mode: str) -> dict[str, float]:
    """One import into a fresh database, in this process (run by `main` in a child process per mode)."""
    from alembic import command

    from annotation_platform.config import Environment, Settings
    from annotation_platform.core.db import create_engine, create_sessionmaker
    from annotation_platform.core.migrations import alembic_config
    from annotation_platform.data_import import service
    from annotation_platform.job.repository import job_repository
    from annotation_platform.models import Container, Job, JobKind, JobStatus, Membership, Project, User

    await recreate_database(DATABASE_URL)
    config = alembic_config(DATABASE_URL)
    config.attributes["configure_logging"] = False
    await asyncio.to_thread(command.upgrade, config, "head")
    data_dir = Path(tempfile.mkdtemp(prefix="bench-import-"))
    settings = Settings(
        environment=Environment.test,
        database_url=DATABASE_URL,
        data_dir=data_dir,
        secret_key=SECRET_KEY,
    )
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    async with sessionmaker() as session, session.begin():
        user = User(email="bench@example.org", username="bench", hashed_password=NO_PASSWORD)
        session.add(user)
        await session.flush()
        project = Project(name="bench", created_by=user.id)
        session.add(project)
        await session.flush()
        session.add(Membership(project_id=project.id, user_id=user.id, role="owner"))
        container = Container(project_id=project.id, name="room", type="chat_room")
        session.add(container)
        await session.flush()
        job_id = uuid.uuid4()
        params = {
            "container_id": str(container.id),
            "format": "csv",
            "mapping": None,
            "dry_run": False,
            "annotator": "bench",
            "annotator_id": str(user.id),
            "encoding": "utf-8",
            "on_error": "abort",
            "filename": csv_path.name,
            "size_bytes": size,
        }
        await job_repository.add(
            session,
            Job(
                id=job_id, kind=JobKind.import_.value, status=JobStatus.queued.value, params=params, created_by=user.id
            ),
        )
    upload = service.upload_path(settings, job_id)
    upload.parent.mkdir(parents=True, exist_ok=True)
    upload.symlink_to(csv_path)
    if mode == "executemany":
        service._CopyWriter = service._BatchWriter  # type: ignore[assignment,misc]  # the writer SQLite uses
    started = time.perf_counter()
    await service.run_import(sessionmaker, job_id, settings=settings)
    seconds = time.perf_counter() - started
    async with sessionmaker() as session:
        job = await session.get(Job, job_id)
        if job is None:
            raise SystemExit(f"{mode}: the job is gone")
        status, result, message = job.status, job.result, job.error_message
    await engine.dispose()
    if status != "succeeded" or not result or result["items_created"] != ROWS:
        raise SystemExit(f"{mode}: the import did not succeed: {status} {message} {result}")
    return {"seconds": seconds, "peak_mb": peak_memory_mb()}


def plain_copy(csv_path: Path) -> float:
    url = make_url(DATABASE_URL)
    psql = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432)]
    psql += ["-U", url.username or "postgres", "-d", url.database or "postgres"]
    subprocess.run(
        [
            *psql,
            "-c",
            "DROP TABLE IF EXISTS bench_plain_copy; CREATE TABLE bench_plain_copy "
            "(user_id text, turn_id text, turn_text text, reply_to_turn text, thread text)",
        ],
        check=True,
    )
    started = time.perf_counter()
    subprocess.run(
        [*psql, "-c", f"\\copy bench_plain_copy FROM '{csv_path}' WITH (FORMAT csv, HEADER true)"], check=True
    )
    return time.perf_counter() - started


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(asyncio.run(import_once(Path(sys.argv[2]), Path(sys.argv[2]).stat().st_size, sys.argv[3]))))
        return
    with tempfile.TemporaryDirectory(prefix="bench-import-") as folder:
        csv_path = Path(folder) / "chat.csv"
        started = time.perf_counter()
        generate(csv_path, ROWS)
        size_mb = csv_path.stat().st_size / 1024**2
        print(f"file: {ROWS:,} turns, {size_mb:,.0f} MB, generated in {time.perf_counter() - started:.1f} s")
        figures: dict[str, dict[str, float]] = {}
        for mode in MODES:
            child = subprocess.run(
                [sys.executable, __file__, "--child", str(csv_path), mode], check=True, capture_output=True, text=True
            )
            figures[mode] = json.loads(child.stdout.strip().splitlines()[-1])
            rate = ROWS / figures[mode]["seconds"]
            print(
                f"run_import, {mode:<11}: {figures[mode]['seconds']:6.1f} s = {rate:8,.0f} rows/s, "
                f"peak memory {figures[mode]['peak_mb']:.0f} MB"
            )
        copy_seconds = plain_copy(csv_path)
        copy_rate = ROWS / copy_seconds
        print(f"psql \\copy, bare table : {copy_seconds:6.1f} s = {copy_rate:8,.0f} rows/s")
        for mode, figure in figures.items():
            print(f"{mode} / plain copy: {ROWS / figure['seconds'] / copy_rate:.2f}")
        if {"executemany", "copy"} <= set(figures):
            print(f"copy / executemany: {figures['executemany']['seconds'] / figures['copy']['seconds']:.2f}x")


if __name__ == "__main__":
    main()
