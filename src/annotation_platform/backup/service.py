"""Backups: asked for through the API (a job a worker runs), by beat on a schedule, or by an operator's command.

A backup is a file in BACKUP_DIR (`pg_dump --format=custom`, or a copy made with SQLite's online backup API)
with a `<file>.sha256` beside it and a row in `backups` (checksum, size, time). The row is written, and older
backups beyond BACKUP_RETENTION_COUNT deleted, in the same transaction that ends the job; their files are
removed once that transaction has committed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from annotation_platform.backup import dump
from annotation_platform.backup.dump import (
    BackupCorrupt,
    BackupFailed,
    BackupNotFound,
    BackupToolMissing,
    DatabaseNotEmpty,
    DumpCancelled,
)
from annotation_platform.backup.repository import backup_repository
from annotation_platform.backup.schemas import BackupRead
from annotation_platform.config import Settings
from annotation_platform.core.db import create_engine
from annotation_platform.core.errors import AppError
from annotation_platform.core.files import remove_stale_files
from annotation_platform.core.ids import parse_uuid, uuid7
from annotation_platform.core.pagination import PageParams
from annotation_platform.core.types import utcnow
from annotation_platform.job.repository import job_repository
from annotation_platform.job.service import job_service
from annotation_platform.models import Backup, Job, JobKind, JobStatus, User

__all__ = [
    "BackupCorrupt",
    "BackupFailed",
    "BackupNotFound",
    "BackupToolMissing",
    "DatabaseNotEmpty",
    "backup_service",
    "run_backup",
    "run_scheduled_backup",
]

logger = logging.getLogger(__name__)
T = TypeVar("T")
HEARTBEAT_SECONDS = 10.0
# A running backup looks this often whether its job was cancelled (the jobs' promise: within a second or two).
CANCEL_POLL_SECONDS = 1.0
# A dump's partial file untouched this long belongs to a worker that was killed: no dump runs that long silently.
STALE_PARTIAL_AGE = timedelta(hours=24)


@dataclass(frozen=True)
class Verified:
    path: Path
    sha256: str
    size_bytes: int
    recorded_in: list[str]
    structure: str


class BackupService:
    # --- the API ------------------------------------------------------------------------------------------------

    async def request(self, session: AsyncSession, *, user: User, idempotency_key: str | None) -> tuple[Job, bool]:
        """A queued backup job (its task sent after commit), or the caller's job with this Idempotency-Key."""
        return await job_service.create(
            session, kind=JobKind.backup, user=user, params={"trigger": "api"}, idempotency_key=idempotency_key
        )

    async def page(
        self, session: AsyncSession, *, params: PageParams
    ) -> tuple[list[BackupRead], str | None, int | None]:
        backups, cursor = await backup_repository.page(session, params)
        total = await backup_repository.count(session) if params.include_total else None
        return [BackupRead.model_validate(backup) for backup in backups], cursor, total

    async def list_all(self, session: AsyncSession) -> list[Backup]:
        return await backup_repository.all(session)

    # --- taking one ---------------------------------------------------------------------------------------------

    async def write_file(
        self,
        settings: Settings,
        *,
        on_wait: Callable[[], Awaitable[None]] | None = None,
        cancelled: Callable[[], Awaitable[bool]] | None = None,
    ) -> Backup:
        """Dumps the database to a new file in BACKUP_DIR and returns its (unsaved) row.

        `on_wait` runs every HEARTBEAT_SECONDS while the dump runs (a worker's heartbeat); `cancelled` is asked
        every CANCEL_POLL_SECONDS, and once it says yes the dump stops and DumpCancelled is raised, no file kept."""
        database = dump.database_of(settings)
        directory = settings.resolved_backup_dir
        directory.mkdir(parents=True, exist_ok=True)
        backup_id, now = uuid7(), utcnow()
        filename = f"annotation-platform-{now:%Y%m%dT%H%M%SZ}-{backup_id}.{dump.EXTENSIONS[database.backend]}"
        final = directory / filename
        partial = directory / (filename + dump.PARTIAL_SUFFIX)
        stop = threading.Event()
        watch = _Watch(on_wait=on_wait, cancelled=cancelled, stop=stop)
        try:
            await watch.run(dump.dump, database, partial, settings.sqlite_busy_timeout_ms / 1000, stop)
            sha256 = await watch.run(dump.sha256_of, partial)
            size = partial.stat().st_size
            partial.replace(final)
            dump.write_checksum_file(final, sha256)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return Backup(
            id=backup_id, backend=database.backend, filename=filename, size_bytes=size, sha256=sha256, created_at=now
        )

    async def record(self, session: AsyncSession, *, backup: Backup, settings: Settings) -> list[Backup]:
        """Saves the backup's row and deletes the rows beyond the retention count; returns those (files to remove).

        Half-written dumps of killed workers older than STALE_PARTIAL_AGE go too."""
        await asyncio.to_thread(
            remove_stale_files,
            settings.resolved_backup_dir,
            "*" + dump.PARTIAL_SUFFIX,
            utcnow() - STALE_PARTIAL_AGE,
        )
        await backup_repository.add(session, backup)
        return await backup_repository.delete_all_but_newest(session, settings.backup_retention_count)

    def remove_files(self, backups: list[Backup], *, settings: Settings) -> None:
        for backup in backups:
            dump.remove_files(settings.resolved_backup_dir / backup.filename)

    async def take(
        self, session_factory: async_sessionmaker[AsyncSession], *, settings: Settings, created_by: uuid.UUID | None
    ) -> Backup:
        """A backup now, without a job (the operator's `backup create`); retention applies."""
        backup = await self.write_file(settings)
        backup.created_by = created_by
        try:
            async with session_factory() as session, session.begin():
                removed = await self.record(session, backup=backup, settings=settings)
        except BaseException:
            dump.remove_files(settings.resolved_backup_dir / backup.filename)
            raise
        self.remove_files(removed, settings=settings)
        return backup

    # --- checking and restoring ---------------------------------------------------------------------------------

    def locate(self, settings: Settings, reference: str) -> Path:
        """A backup's file from its id (looked up in BACKUP_DIR, so no database is needed) or its path."""
        backup_id = parse_uuid(reference)
        if backup_id is not None:
            directory = settings.resolved_backup_dir
            matches = [
                path
                for path in directory.glob(f"*{backup_id}.*")
                if path.suffix.lstrip(".") in dump.EXTENSIONS.values()
            ]
            if not matches:
                raise BackupNotFound(f"No backup file with id {backup_id} in {directory}.")
            return matches[0]
        path = Path(reference).expanduser()
        if not path.is_file():
            raise BackupNotFound(f"{reference} is neither a backup id nor a file.")
        return path.resolve()

    async def recorded_checksums(self, settings: Settings, path: Path) -> dict[str, str]:
        """What the file's checksum should be: from its `.sha256` file and from its row, where they exist."""
        recorded: dict[str, str] = {}
        sidecar = dump.read_checksum_file(path)
        if sidecar:
            recorded[path.name + dump.CHECKSUM_SUFFIX] = sidecar
        row = await _read_database(settings, lambda session: backup_repository.by_filename(session, path.name))
        if row is not None:
            recorded["the backups table"] = row.sha256
        return recorded

    async def verify(self, settings: Settings, reference: str) -> Verified:
        """Recomputes the checksum, compares it with the recorded ones, and reads the file as its format."""
        path = self.locate(settings, reference)
        sha256 = await asyncio.to_thread(dump.sha256_of, path)
        recorded = await self.recorded_checksums(settings, path)
        for source, expected in recorded.items():
            if expected != sha256:
                raise BackupCorrupt(f"{path.name}: SHA-256 is {sha256}, but {source} records {expected}.")
        structure = await asyncio.to_thread(dump.check_structure, path)
        return Verified(path, sha256, path.stat().st_size, sorted(recorded), structure)

    async def restore(self, settings: Settings, reference: str) -> Verified:
        """Verifies the backup, checks the target database is empty, and loads the backup into it."""
        verified = await self.verify(settings, reference)
        database = dump.database_of(settings)
        kind = dump.format_of(verified.path)
        if kind != database.backend:
            raise BackupFailed(
                f"{verified.path.name} is a {kind} backup; the configured database is {database.backend}."
            )
        if database.backend == dump.SQLITE:
            if await asyncio.to_thread(dump.sqlite_has_tables, database.file):
                raise DatabaseNotEmpty(_not_empty(database))
        else:
            tables = await _postgres_table_count(settings, database)
            if tables:
                raise DatabaseNotEmpty(_not_empty(database))
        await asyncio.to_thread(dump.restore, database, verified.path)
        if database.backend == dump.POSTGRESQL:
            await _settle_change_feed(settings)
        return verified


def _not_empty(database: dump.Database) -> str:
    return (
        f"The database {database.label} is not empty: a backup is restored only into an empty database. "
        "Create a new empty database (or move the SQLite file away) and point DATABASE_URL / DATA_DIR at it."
    )


async def _settle_change_feed(settings: Settings) -> None:
    """The feed's entries carry transaction ids of the server that wrote them, and a restore may be onto another
    server whose ids are lower: left as they are, the entries would sort after new ones and never be settled
    there (docs/versioning.md)."""
    engine = create_engine(settings)
    try:
        async with engine.begin() as connection:
            await backup_repository.settle_change_feed(connection)
    finally:
        await engine.dispose()


async def _postgres_table_count(settings: Settings, database: dump.Database) -> int:
    engine = create_engine(settings)
    try:
        async with engine.connect() as connection:
            return await backup_repository.user_table_count(connection)
    except (OperationalError, DBAPIError, OSError) as exc:
        raise BackupFailed(
            f"Cannot connect to {database.label} ({type(exc.__cause__ or exc).__name__}); create the empty "
            "database first, e.g. `createdb`."
        ) from exc
    finally:
        await engine.dispose()


async def _read_database(settings: Settings, work: Callable[[AsyncSession], Awaitable[T]]) -> T | None:
    """`work` against the configured database, or None where it cannot be read (missing, empty, no table)."""
    database = dump.database_of(settings)
    if database.backend == dump.SQLITE and not await asyncio.to_thread(dump.sqlite_has_tables, database.file):
        return None
    engine = create_engine(settings)
    try:
        async with AsyncSession(engine) as session:
            return await work(session)
    except (OperationalError, ProgrammingError, DBAPIError, OSError):
        return None
    finally:
        await engine.dispose()


@dataclass
class _Watch:
    """Runs the blocking steps of a backup in a thread, beating the heart and passing a cancel on to `stop`."""

    on_wait: Callable[[], Awaitable[None]] | None
    cancelled: Callable[[], Awaitable[bool]] | None
    stop: threading.Event

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        task = asyncio.ensure_future(asyncio.to_thread(function, *args))
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + HEARTBEAT_SECONDS
        while True:
            done, _ = await asyncio.wait({task}, timeout=CANCEL_POLL_SECONDS)
            if done:
                result = task.result()
                if self.stop.is_set():
                    raise DumpCancelled()
                return result
            if self.cancelled is not None and not self.stop.is_set() and await self.cancelled():
                self.stop.set()
            if self.on_wait is not None and loop.time() >= next_beat:
                next_beat = loop.time() + HEARTBEAT_SECONDS
                await self.on_wait()


backup_service = BackupService()


# --- what workers run -----------------------------------------------------------------------------------------------


async def run_backup(
    session_factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID, *, settings: Settings
) -> None:
    """Claims the backup job, writes the file (heartbeating), then records it and ends the job in one transaction."""
    async with session_factory() as session, session.begin():
        job = await job_service.claim(session, job_id=job_id)
    if job is None:
        logger.info("backup %s: not queued any more; nothing to do", job_id)
        return

    async def heartbeat() -> None:
        async with session_factory() as session, session.begin():
            await job_service.report_progress(session, job_id=job_id, done=0, total=1)

    async def cancelled() -> bool:
        async with session_factory() as session:
            return await job_service.cancel_requested(session, job_id=job_id, settings=settings)

    try:
        backup = await backup_service.write_file(settings, on_wait=heartbeat, cancelled=cancelled)
    except DumpCancelled:
        async with session_factory() as session, session.begin():
            await job_service.finish(
                session, job_id=job_id, status=JobStatus.cancelled, error_message="Cancelled; no file was kept."
            )
        job_service.forget_cancel_request(job_id=job_id, settings=settings)
        return
    except AppError as exc:
        await _fail(session_factory, job_id, exc.detail)
        return
    except Exception as exc:
        logger.exception("backup %s failed", job_id)
        await _fail(session_factory, job_id, f"backup failed: {type(exc).__name__}: {exc}")
        return
    backup.job_id, backup.created_by = job_id, job.created_by
    try:
        async with session_factory() as session, session.begin():
            removed = await backup_service.record(session, backup=backup, settings=settings)
            result = {
                "backup_id": str(backup.id),
                "filename": backup.filename,
                "size_bytes": backup.size_bytes,
                "sha256": backup.sha256,
                "deleted_by_retention": len(removed),
            }
            if not await job_service.finish(session, job_id=job_id, status=JobStatus.succeeded, result=result, done=1):
                logger.warning("backup %s: the job was failed by the reaper meanwhile; the backup is kept", job_id)
    except BaseException:
        dump.remove_files(settings.resolved_backup_dir / backup.filename)
        raise
    backup_service.remove_files(removed, settings=settings)


async def _fail(session_factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID, message: str) -> None:
    async with session_factory() as session, session.begin():
        await job_service.finish(session, job_id=job_id, status=JobStatus.failed, error_message=message)


async def run_scheduled_backup(session_factory: async_sessionmaker[AsyncSession], *, settings: Settings) -> uuid.UUID:
    """Beat's backup: a job of nobody's (so it shows in the jobs table), run at once by this worker."""
    job = Job(
        kind=JobKind.backup.value,
        status=JobStatus.queued.value,
        params={"trigger": "schedule"},
        created_by=None,
        created_at=utcnow(),
    )
    async with session_factory() as session, session.begin():
        await job_repository.add(session, job)
    await run_backup(session_factory, job.id, settings=settings)
    return job.id
