"""Imports: accept a file (request side), then read, check and write it in a worker (`run_import`).

The request checks what can be checked up front (mapping, encoding, annotator), stores the upload under
`DATA_DIR/uploads/<job_id>` and queues a job. The worker reads the file as a stream in batches and writes
everything in ONE transaction: a failed, cancelled or killed import leaves nothing behind. Progress, the
heartbeat and the cancel flag travel in separate short transactions beside it (on SQLite, where a second
writer would wait for the import's write lock, the cancel flag and the progress travel as files instead).
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson
from jsonschema import Draft202012Validator
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.concurrency import run_in_threadpool

from annotation_platform.annotation.repository import annotation_repository, first_revisions
from annotation_platform.change.service import ChangeAction, ResourceType, change_service
from annotation_platform.config import Settings, get_settings
from annotation_platform.container.service import ContainerAccess
from annotation_platform.core.errors import PayloadTooLarge, ValidationFailed
from annotation_platform.core.field_crypto import (
    annotation_data_context,
    is_sensitive,
    item_content_context,
    item_metadata_context,
    key_ring_of,
    seal_json,
)
from annotation_platform.core.ids import parse_uuid, uuid7, uuid7_strings
from annotation_platform.core.types import utcnow
from annotation_platform.data_import import parsing
from annotation_platform.data_import.repository import (
    ANNOTATION_STAGE_COLUMNS,
    ITEM_STAGE_COLUMNS,
    StagedTarget,
    import_repository,
)
from annotation_platform.data_import.schemas import ImportOptions
from annotation_platform.job.repository import job_repository
from annotation_platform.job.runner import JobCancelled, JobLost
from annotation_platform.job.service import MAX_STORED_ERRORS, job_service, report_progress_by_file
from annotation_platform.models import Container, Job, JobKind, JobStatus, User

logger = logging.getLogger(__name__)

COPY_CHUNK_BYTES = 1024 * 1024
EXPIRE_CHUNK = 500
BATCHES_AHEAD = 2
"""Batches the reader thread may have parsed before the writer takes them: bounds memory, allows overlap."""


class MappingInvalid(ValidationFailed):
    code = "mapping_invalid"
    title = "Invalid mapping"
    description = "`mapping` must be a JSON object from target (e.g. `content`, `annotation.thread`) to source column."


class EncodingUnknown(ValidationFailed):
    code = "encoding_unknown"
    title = "Unknown encoding"
    description = "`encoding` must be a text encoding Python knows, e.g. `utf-8` or `latin-1`."


class AnnotatorUnknown(ValidationFailed):
    code = "annotator_unknown"
    title = "Annotator is not a project member"
    description = "`annotator` must be the username or email of a member of the container's project."


class UploadTooLarge(PayloadTooLarge):
    code = "upload_too_large"
    title = "Upload too large"
    description = "The file exceeds the configured import size limit (MAX_UPLOAD_BYTES). Split it."


def upload_path(settings: Settings, job_id: uuid.UUID) -> Path:
    return (settings.data_dir / "uploads" / str(job_id)).resolve()


# --- the request side ---------------------------------------------------------------------------------------------


class ImportService:
    async def create(
        self,
        session: AsyncSession,
        *,
        access: ContainerAccess,
        user: User,
        settings: Settings,
        upload: IO[bytes],
        filename: str | None,
        options: ImportOptions,
        idempotency_key: str | None,
    ) -> tuple[Job, bool]:
        """The queued import job and True, or the caller's earlier job with this Idempotency-Key and False."""
        if idempotency_key is not None:
            existing = await job_service.find_idempotent(
                session,
                user=user,
                key=idempotency_key,
                kind=JobKind.import_,
                project_id=access.container.project_id,
                target={"container_id": str(access.container.id)},
            )
            if existing is not None:
                return existing, False
        mapping = self._mapping(options.mapping)
        try:
            codecs.lookup(options.encoding)
        except LookupError as exc:
            raise EncodingUnknown(f"Unknown encoding {options.encoding!r}.") from exc
        annotator = options.annotator or user.username
        annotator_id = await import_repository.member_by_name_or_email(session, access.container.project_id, annotator)
        if annotator_id is None:
            raise AnnotatorUnknown(f"{annotator!r} is not a member of this project.")
        job_id = uuid7()
        path = upload_path(settings, job_id)
        size = await run_in_threadpool(_store_upload, upload, path, settings.max_upload_bytes)
        params = {
            "container_id": str(access.container.id),
            "format": options.format,
            "mapping": mapping,
            "dry_run": options.dry_run,
            "annotator": annotator,
            "annotator_id": str(annotator_id),
            "encoding": options.encoding,
            "on_error": options.on_error,
            "filename": filename,
            "size_bytes": size,
        }
        return await job_service.create(
            session,
            kind=JobKind.import_,
            user=user,
            params=params,
            project_id=access.container.project_id,
            idempotency_key=idempotency_key,
            job_id=job_id,
        )

    async def expire_uploads(self, session: AsyncSession, *, settings: Settings, now: datetime | None = None) -> int:
        """Deletes uploads older than UPLOAD_RETENTION_HOURS whose job has ended (or is gone); the number deleted.

        Succeeded imports delete their upload at once; this sweeps those of failed and cancelled ones (kept for
        a retry) and any left by a crash.
        """
        folder = settings.data_dir / "uploads"
        cutoff = (now or utcnow()).timestamp() - settings.upload_retention_hours * 3600
        old: dict[uuid.UUID, Path] = {}
        for path in await run_in_threadpool(_files_older_than, folder, cutoff):
            job_id = parse_uuid(path.name)
            if job_id is None:
                continue
            old[job_id] = path
        deleted = 0
        for chunk in _chunks(list(old), EXPIRE_CHUNK):
            active = await job_repository.active_of(session, chunk)
            for job_id in chunk:
                if job_id not in active:
                    old[job_id].unlink(missing_ok=True)
                    deleted += 1
        return deleted

    def _mapping(self, raw: str | None) -> dict[str, str] | None:
        if raw is None or not raw.strip():
            return None
        try:
            mapping = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise MappingInvalid("`mapping` is not valid JSON.") from exc
        if not isinstance(mapping, dict) or not all(
            isinstance(key, str) and isinstance(value, str) for key, value in mapping.items()
        ):
            raise MappingInvalid("`mapping` must be a JSON object of strings (target -> source column).")
        try:
            parsing.validate_mapping(mapping)
        except parsing.MappingError as exc:
            raise MappingInvalid(str(exc)) from exc
        return mapping


def _store_upload(upload: IO[bytes], path: Path, limit: int) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    upload.seek(0)
    try:
        with path.open("wb") as out:
            while chunk := upload.read(COPY_CHUNK_BYTES):
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(f"The file exceeds the limit of {limit} bytes.")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size


def _files_older_than(folder: Path, cutoff: float) -> list[Path]:
    if not folder.is_dir():
        return []
    return [path for path in folder.iterdir() if path.is_file() and path.stat().st_mtime < cutoff]


def _chunks(values: list[uuid.UUID], size: int) -> Iterator[list[uuid.UUID]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


import_service = ImportService()


# --- the worker side ----------------------------------------------------------------------------------------------


@dataclass
class Counts:
    rows: int = 0
    items_created: int = 0
    items_matched: int = 0
    annotations_created: int = 0
    annotations_updated: int = 0
    annotations_unchanged: int = 0
    rows_skipped: int = 0

    def as_result(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "items_created": self.items_created,
            "items_matched": self.items_matched,
            "annotations_created": self.annotations_created,
            "annotations_updated": self.annotations_updated,
            "annotations_unchanged": self.annotations_unchanged,
            "rows_skipped": self.rows_skipped,
        }


@dataclass
class Problems:
    """Row errors: all counted, the first MAX_STORED_ERRORS kept."""

    count: int = 0
    kept: list[dict[str, Any]] = field(default_factory=list)
    rows: set[int] = field(default_factory=set)

    def add(self, row: int | None, column: str | None, message: str) -> None:
        self.count += 1
        if row is not None:
            self.rows.add(row)
        if len(self.kept) < MAX_STORED_ERRORS:
            self.kept.append({"seq": len(self.kept) + 1, "row": row, "column": column, "message": message[:2000]})


async def run_import(
    session_factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID, *, settings: Settings | None = None
) -> None:
    """Runs the queued import job `job_id` to its end (succeeded, failed or cancelled).

    Nothing happens when the job is not queued (cancelled meanwhile, or a duplicate message).
    """
    settings = settings or get_settings()
    async with session_factory() as session, session.begin():
        job = await job_service.claim(session, job_id=job_id)
    if job is None:
        logger.info("import %s: not queued any more; nothing to do", job_id)
        return
    await execute_import(session_factory, job, settings)


async def execute_import(session_factory: async_sessionmaker[AsyncSession], job: Job, settings: Settings) -> None:
    """Runs an import job this worker has claimed (`running`) to its end."""
    job_id = job.id
    importer = _Importer(session_factory, job, settings)
    try:
        await importer.run()
    except JobCancelled:
        await importer.finish(JobStatus.cancelled, error_message="Cancelled; nothing was written.")
    except JobLost:
        logger.warning("import %s: the job was failed by the reaper meanwhile; rolled back", job_id)
    except parsing.ImportFileError as exc:
        await importer.finish(JobStatus.failed, error_message=f"The file cannot be read: {exc}")
    except Exception:
        logger.exception("import %s failed", job_id)
        await importer.finish(JobStatus.failed, error_message="The import failed unexpectedly; nothing was written.")


class _Importer:
    def __init__(self, session_factory: async_sessionmaker[AsyncSession], job: Job, settings: Settings) -> None:
        self.session_factory = session_factory
        self.job = job
        self.settings = settings
        self.params = job.params
        self.container_id = uuid.UUID(self.params["container_id"])
        self.author = uuid.UUID(self.params["annotator_id"])
        self.dry_run = bool(self.params.get("dry_run"))
        self.skip = self.params.get("on_error") == "skip"
        self.counts = Counts()
        self.problems = Problems()
        self.path = upload_path(settings, job.id)
        self.is_sqlite = settings.is_sqlite
        self.total = 0
        self.sources: dict[str, str] = {}

    async def finish(self, status: JobStatus, **values: Any) -> None:
        async with self.session_factory() as session, session.begin():
            await job_service.finish(session, job_id=self.job.id, status=status, **values)
        self._done(status)

    def _done(self, status: JobStatus) -> None:
        """After the job's end is committed: a succeeded job's upload is not needed any more (it cannot be
        retried); a failed or cancelled one's is kept for a retry until UPLOAD_RETENTION_HOURS."""
        job_service.forget_cancel_request(job_id=self.job.id, settings=self.settings)
        if status == JobStatus.succeeded:
            self.path.unlink(missing_ok=True)

    async def run(self) -> None:
        async with self.session_factory() as session:
            container = await import_repository.container(session, self.container_id)
            author_exists = await import_repository.user_exists(session, self.author)
        if container is None:
            await self.finish(JobStatus.failed, error_message="The container no longer exists.")
            return
        if not author_exists:
            await self.finish(JobStatus.failed, error_message="The annotator's account no longer exists.")
            return
        if not self.path.is_file():
            await self.finish(JobStatus.failed, error_message="The uploaded file is gone from the server.")
            return
        self.total = await run_in_threadpool(_estimate_rows, self.path, self.params["format"])
        await self._progress(0)
        validator = Draft202012Validator(container.item_schema) if container.item_schema is not None else None
        # Row errors name the file's own columns.
        self.sources = parsing.effective_mapping(self.params.get("mapping"), container.type)
        # One transaction for all the data; leaving this block by an exception (cancel, a bad file, a crash)
        # rolls it back, and a killed worker's transaction dies with its connection.
        async with self.session_factory() as session:
            # PostgreSQL writes through COPY; SQLite (and any dry run, which only looks things up) in batches.
            copy = session.get_bind().dialect.name == "postgresql" and not self.dry_run
            writer_class = _CopyWriter if copy else _BatchWriter
            writer = writer_class(
                session, container, self.author, self.counts, write=not self.dry_run, changed_by=self.job.created_by
            )
            await writer.start()
            async for batch, read in self._batches(container.type, validator):
                await self._write(writer, batch, read)
            await writer.resolve_forward_parents()
            await self._end(session, writer)

    async def _batches(
        self, container_type: str, validator: Draft202012Validator | None
    ) -> AsyncIterator[tuple[list[parsing.ParsedRow], int]]:
        """The file's good rows in batches, with the number of rows read so far.

        A thread reads, parses and checks the file up to `BATCHES_AHEAD` batches ahead of the writer, so the
        Python work of the next batch overlaps with the database's work on this one. It stops when the writer
        does (cancel, failure) and hands over its own failure (an unreadable file) in the batch's place.
        """
        ready: queue.Queue[tuple[list[parsing.ParsedRow], int] | BaseException | None] = queue.Queue(BATCHES_AHEAD)
        stop = threading.Event()

        def offer(entry: tuple[list[parsing.ParsedRow], int] | BaseException | None) -> bool:
            while not stop.is_set():
                try:
                    ready.put(entry, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            batches = self._read(container_type, validator)
            try:
                for batch in batches:
                    if not offer(batch):
                        return
                offer(None)
            except BaseException as exc:  # handed over to the writer, which raises it
                offer(exc)
            finally:
                batches.close()

        def take() -> tuple[list[parsing.ParsedRow], int] | BaseException | None:
            while True:
                try:
                    return ready.get(timeout=0.2)
                except queue.Empty:
                    if not reader.is_alive() and ready.empty():
                        return None

        reader = threading.Thread(target=produce, name=f"import-{self.job.id}", daemon=True)
        reader.start()
        try:
            while (entry := await asyncio.to_thread(take)) is not None:
                if isinstance(entry, BaseException):
                    raise entry
                yield entry
        finally:
            stop.set()
            await asyncio.to_thread(reader.join)

    def _read(
        self, container_type: str, validator: Draft202012Validator | None
    ) -> Generator[tuple[list[parsing.ParsedRow], int], None, None]:
        """Runs in the reader thread: problems are recorded here, good rows handed on in batches."""
        size = self.settings.import_batch_size
        batch: list[parsing.ParsedRow] = []
        rows = _rows(self.path, self.params, container_type)
        try:
            for entry in rows:
                if isinstance(entry, parsing.RowProblem):
                    self.problems.add(entry.row, entry.column, entry.message)
                    continue
                self.counts.rows += 1
                if self._check(entry, validator):
                    batch.append(entry)
                if len(batch) >= size:
                    yield batch, self.counts.rows
                    batch = []
            yield batch, self.counts.rows
        finally:
            rows.close()

    async def _write(self, writer: _BatchWriter, batch: list[parsing.ParsedRow], read: int) -> None:
        """Writes a batch, unless errors already doom an all-or-nothing import; then reports and checks cancel."""
        rows = [row for row in batch if row.number not in self.problems.rows]
        if rows and (self.skip or self.problems.count == 0):
            await writer.write(rows)
        await self._progress(read)

    async def _end(self, session: AsyncSession, writer: _BatchWriter) -> None:
        problems = self.problems
        if problems.count and not self.skip:
            await session.rollback()
            await self.finish(
                JobStatus.failed,
                error_message=f"{problems.count} problem(s) in the file; nothing was written "
                "(use on_error=skip to write the good rows).",
                error_count=problems.count,
                errors=problems.kept,
                done=self.counts.rows,
                result={**self.counts.as_result(), "dry_run": self.dry_run, "written": False},
            )
            return
        self.counts.rows_skipped = len(problems.rows)
        result = {**self.counts.as_result(), "dry_run": self.dry_run, "written": not self.dry_run}
        if self.dry_run:
            await session.rollback()
            await self.finish(
                JobStatus.succeeded,
                result=result,
                error_count=problems.count,
                errors=problems.kept,
                done=self.counts.rows,
            )
            return
        await writer.finish()
        # The job ends in the same transaction as the data: both are committed, or neither.
        finished = await job_service.finish(
            session,
            job_id=self.job.id,
            status=JobStatus.succeeded,
            result=result,
            error_count=problems.count,
            errors=problems.kept,
            done=self.counts.rows,
        )
        if not finished:
            raise JobLost()
        await session.commit()
        self._done(JobStatus.succeeded)

    def _column(self, target: str) -> str:
        return self.sources.get(target, target)

    def _check(self, row: parsing.ParsedRow, validator: Draft202012Validator | None) -> bool:
        """The item schema; the parser has already refused empty, long, repeated or NUL-bearing values."""
        error = next(iter(validator.iter_errors(row.metadata)), None) if validator is not None else None
        if error is None:
            return True
        where = "/".join(str(part) for part in error.absolute_path)
        first = str(error.absolute_path[0]) if error.absolute_path else None
        column = self._column(f"metadata.{first}") if first else "metadata"
        self.problems.add(row.number, column, f"Does not fit the item schema at {where or '/'}: {error.message}")
        return False

    async def _progress(self, done: int) -> None:
        """Reports progress and beats the heart (PostgreSQL), and stops if the client cancelled.

        A SQLite import past its first batch holds the only write lock: its progress goes to a file instead."""
        total = max(self.total, done)
        if self.is_sqlite and not self.dry_run and done > 0:
            await asyncio.to_thread(report_progress_by_file, self.settings, self.job.id, done=done, total=total)
        async with self.session_factory() as session, session.begin():
            if not self.is_sqlite or self.dry_run or done == 0:
                await job_service.report_progress(session, job_id=self.job.id, done=done, total=total)
            if await job_service.cancel_requested(session, job_id=self.job.id, settings=self.settings):
                raise JobCancelled()


def _rows(path: Path, params: dict[str, Any], container_type: str) -> parsing.Rows:
    return parsing.parse_rows(
        path,
        file_format=params["format"],
        mapping=params.get("mapping"),
        container_type=container_type,
        encoding=params.get("encoding") or "utf-8",
    )


def _estimate_rows(path: Path, file_format: str) -> int:
    """Rows to expect, for progress: line breaks for CSV (less the header) and JSON Lines; unknown (0) for JSON."""
    if file_format not in ("csv", "jsonl"):
        return 0
    lines = 0
    last = b"\n"
    with path.open("rb") as file:
        while chunk := file.read(COPY_CHUNK_BYTES):
            lines += chunk.count(b"\n")
            last = chunk[-1:]
    if last != b"\n":
        lines += 1
    return max(lines - 1, 0) if file_format == "csv" else lines


class _BatchWriter:
    """Writes batches of parsed rows into one open transaction (or, for a dry run, only looks things up)."""

    def __init__(
        self,
        session: AsyncSession,
        container: Container,
        author: uuid.UUID,
        counts: Counts,
        *,
        write: bool,
        changed_by: uuid.UUID | None,
    ):
        self.session = session
        self.container = container
        self.author = author
        self.changed_by = changed_by
        self.counts = counts
        self.write_enabled = write
        self.next_sequence = 0
        self.container_was_empty = False
        self.forward_parents: list[tuple[uuid.UUID, str]] = []
        self.sensitive = False

    async def start(self) -> None:
        self.sensitive = await is_sensitive(self.session, self.container.project_id)
        last = await import_repository.max_sequence(self.session, self.container.id)
        self.next_sequence = 0 if last is None else last + 1
        self.container_was_empty = last is None

    async def _existing(self, rows: list[parsing.ParsedRow]) -> dict[str, Any]:
        """The rows' items that the container already had (none when it started empty: the file has no
        duplicates, so its rows cannot match each other)."""
        if self.container_was_empty:
            return {}
        return await import_repository.item_ids(self.session, self.container.id, [row.external_id for row in rows])

    async def write(self, rows: list[parsing.ParsedRow]) -> None:
        session = self.session
        existing = await self._existing(rows)
        wanted_parents = [row.parent_external_id for row in rows if row.parent_external_id]
        batch_ids: dict[str, uuid.UUID] = {}
        new_items: list[dict[str, Any]] = []
        now = utcnow()
        for row in rows:
            if row.external_id in existing:
                self.counts.items_matched += 1
                continue
            item_id = uuid7()
            batch_ids[row.external_id] = item_id
            sequence = row.sequence if row.sequence is not None else self.next_sequence
            self.next_sequence = max(self.next_sequence, sequence + 1)
            new_items.append(
                {
                    "id": item_id,
                    "container_id": self.container.id,
                    "external_id": row.external_id,
                    "content": row.content,
                    "metadata_": row.metadata,
                    "sequence": sequence,
                    "parent_id": None,
                    "schema_version": self.container.item_schema_version,
                    "_parent": row.parent_external_id,
                    "created_at": now,
                    "updated_at": now,
                }
            )
        self.counts.items_created += len(new_items)
        # Earlier batches are in the same transaction, so the database resolves parents from them too.
        outside = [ref for ref in wanted_parents if ref not in batch_ids and ref not in existing]
        known = {**(await import_repository.item_ids(session, self.container.id, outside)), **existing, **batch_ids}
        for item in new_items:
            parent_ref = item.pop("_parent")
            if parent_ref is None or parent_ref == item["external_id"]:
                continue
            if parent_ref in known:
                item["parent_id"] = known[parent_ref]
            else:
                self.forward_parents.append((item["id"], parent_ref))
        if self.write_enabled:
            await import_repository.insert_items(session, new_items, sensitive=self.sensitive)
            await self._record("item", "created", [(item["id"], None) for item in new_items])
        await self._annotations(rows, {**existing, **batch_ids}, now)

    async def _annotations(self, rows: list[parsing.ParsedRow], item_ids: dict[str, uuid.UUID], now: Any) -> None:
        types = sorted({type_ for row in rows for type_ in row.annotations})
        if not types:
            return
        ids = [item_ids[row.external_id] for row in rows]
        current = await import_repository.plain_annotations(self.session, ids, self.author, types)
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for row in rows:
            item_id = item_ids[row.external_id]
            for type_, data in row.annotations.items():
                found = current.get((item_id, type_))
                if found is None:
                    inserts.append(
                        {
                            "id": uuid7(),
                            "item_id": item_id,
                            "container_id": self.container.id,
                            "type": type_,
                            "data": data,
                            "created_by": self.author,
                            "version": 1,
                            "created_at": now,
                            "updated_at": now,
                        }
                    )
                    current[(item_id, type_)] = (inserts[-1]["id"], data, 1)
                elif found[1] == data:
                    self.counts.annotations_unchanged += 1
                else:
                    updates.append({"id": found[0], "data": data, "version": found[2] + 1, "updated_at": now})
                    current[(item_id, type_)] = (found[0], data, found[2] + 1)
        self.counts.annotations_created += len(inserts)
        self.counts.annotations_updated += len(updates)
        if self.write_enabled:
            await import_repository.insert_annotations(self.session, inserts, sensitive=self.sensitive)
            await import_repository.update_annotations(self.session, updates, sensitive=self.sensitive)
            await self._revisions(inserts, updates, now)

    async def _revisions(self, inserts: list[dict[str, Any]], updates: list[dict[str, Any]], now: Any) -> None:
        """The batch's revisions and feed entries: one executemany each, as for the annotations themselves."""
        await annotation_repository.insert_revisions(
            self.session,
            first_revisions(inserts, changed_by=self.changed_by, changed_at=now),
            sensitive=self.sensitive,
        )
        await annotation_repository.insert_revisions_of_current(
            self.session, [row["id"] for row in updates], action="updated", changed_by=self.changed_by, now=now
        )
        await self._record("annotation", "created", [(row["id"], 1) for row in inserts])
        await self._record("annotation", "updated", [(row["id"], row["version"]) for row in updates])

    async def _record(
        self, resource_type: ResourceType, action: ChangeAction, entries: list[tuple[uuid.UUID, int | None]]
    ) -> None:
        await change_service.record(
            self.session,
            project_id=self.container.project_id,
            resource_type=resource_type,
            action=action,
            entries=[(resource_id, self.container.id, version) for resource_id, version in entries],
            changed_by=self.changed_by,
        )

    async def resolve_forward_parents(self) -> None:
        """Parents named before they appear in the file; a parent found nowhere stays null (DOMAIN.md)."""
        if not self.forward_parents or not self.write_enabled:
            return
        refs = [ref for _, ref in self.forward_parents]
        known = await import_repository.item_ids(self.session, self.container.id, refs)
        rows = [{"id": item_id, "parent_id": known[ref]} for item_id, ref in self.forward_parents if ref in known]
        await import_repository.set_parents(self.session, rows)
        await self._record("item", "updated", [(row["id"], None) for row in rows])

    async def finish(self) -> None:
        await import_repository.add_to_item_count(self.session, self.container.id, self.counts.items_created)


def _json(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # integers beyond 64 bits, which JSON files may hold
        return json.dumps(value)


class _CopyWriter(_BatchWriter):
    """PostgreSQL: each batch goes through COPY into staging tables, then set-based SQL (see the repository).

    Which external ids the container has already is one indexed look-up per batch (none when it started
    empty): it numbers the new items exactly as the batched writer does (a row without a sequence follows the
    highest so far). Parents are set as the items go in (found in the batch here, else by the database); those
    named before they appear are resolved at the end.
    Ids are made in bulk (`uuid7_strings`) and sent as text.
    """

    async def start(self) -> None:
        await super().start()
        await import_repository.create_stages(self.session)
        self.forward_parent_count = 0
        self.written = 0
        self.analyze_at = 0

    async def _analyze_as_tables_grow(self, rows: int) -> None:
        """ANALYZE after the first batch, then each time the import has written four times as many rows: a
        handful of times per import, so plans keep up with the tables (see `ImportRepository.analyze`)."""
        self.written += rows
        if self.written >= self.analyze_at:
            await import_repository.analyze(self.session)
            self.analyze_at = self.written * 4

    async def write(self, rows: list[parsing.ParsedRow]) -> None:
        session = self.session
        existing = await self._existing(rows)
        new_ids = iter(uuid7_strings(len(rows) - len(existing)))
        annotation_ids = iter(uuid7_strings(sum(len(row.annotations) for row in rows)))
        items: list[tuple[Any, ...]] = []
        annotations: list[tuple[Any, ...]] = []
        batch_ids: dict[str, Any] = {}
        key_ring = key_ring_of(session) if self.sensitive else None
        # A sensitive project's annotations on items it had already are compared and written in Python, after
        # the items (`_annotations`): the database cannot compare sealed values, nor move them to another row.
        stage_annotations = not (self.sensitive and existing)
        for row in rows:
            item_id = existing.get(row.external_id)
            if item_id is None:
                item_id = batch_ids[row.external_id] = next(new_ids)
                sequence = row.sequence if row.sequence is not None else self.next_sequence
                self.next_sequence = max(self.next_sequence, sequence + 1)
                parent = row.parent_external_id if row.parent_external_id != row.external_id else None
                parent_id = batch_ids.get(parent) if parent else None
                content, metadata = row.content, _json(row.metadata)
                if key_ring is not None:
                    content = key_ring.encrypt_text(content, context=item_content_context(item_id))
                    metadata = _json(seal_json(key_ring, row.metadata, item_metadata_context(item_id)))
                items.append((item_id, row.external_id, content, metadata, sequence, parent_id, parent))
            if not stage_annotations:
                continue
            for type_, data in row.annotations.items():
                annotation_id = next(annotation_ids)
                if key_ring is not None:
                    sealed = seal_json(key_ring, data, annotation_data_context(annotation_id))
                    annotations.append((annotation_id, item_id, type_, _json(sealed)))
                else:
                    annotations.append((annotation_id, item_id, type_, _json(data)))
        self.counts.items_matched += len(rows) - len(items)
        now = utcnow()
        await import_repository.copy_records(session, "import_items_stage", ITEM_STAGE_COLUMNS, items)
        await import_repository.copy_records(session, "import_annotations_stage", ANNOTATION_STAGE_COLUMNS, annotations)
        if items:
            created, later = await import_repository.insert_staged_items(session, self._staged(), now)
            self.counts.items_created += created
            self.forward_parent_count += later
        if annotations and not existing:
            # New items only: nothing to compare with, and no look-up the planner might turn into a scan.
            self.counts.annotations_created += await import_repository.insert_staged_annotations(
                session, self._staged(), now
            )
        elif annotations:
            created, updated, unchanged = await import_repository.upsert_staged_annotations(
                session, self._staged(), now
            )
            self.counts.annotations_created += created
            self.counts.annotations_updated += updated
            self.counts.annotations_unchanged += unchanged
        if not stage_annotations:
            known = {**existing, **{key: uuid.UUID(value) for key, value in batch_ids.items()}}
            await self._annotations(rows, known, now)
        await self._analyze_as_tables_grow(len(rows))

    def _staged(self) -> StagedTarget:
        return StagedTarget(
            container_id=self.container.id,
            project_id=self.container.project_id,
            author=self.author,
            changed_by=self.changed_by,
            schema_version=self.container.item_schema_version,
        )

    async def resolve_forward_parents(self) -> None:
        resolved = 0
        if self.forward_parent_count:
            resolved = await import_repository.resolve_staged_parents(self.session, self._staged())
        logger.info(
            "import into %s: %d items and %d annotations through COPY, %d parents named before they appear, "
            "%d of them found",
            self.container.id,
            self.counts.items_created,
            self.counts.annotations_created + self.counts.annotations_updated,
            self.forward_parent_count,
            resolved,
        )
