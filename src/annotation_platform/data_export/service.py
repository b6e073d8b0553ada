"""Exports: accept the request (a queued job), then write the file in a worker (`run_export`).

The worker reads the project's items container by container in keyset pages, fetches each page's annotations
with one query, and writes the page to the export store before reading the next: memory stays flat however
large the project. On PostgreSQL all pages are read in one REPEATABLE READ transaction, so the file is one
consistent snapshot (the CSV's label columns included). Progress and the cancel check travel in short
transactions between pages; a cancelled or failed export leaves no file.
"""

from __future__ import annotations

import csv
import io
import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import SimpleNamespace
from typing import Any, BinaryIO

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from annotation_platform.config import Settings, get_settings
from annotation_platform.core.crypto import KeyRing
from annotation_platform.core.errors import AppError, Conflict, NotFound, ValidationFailed
from annotation_platform.core.field_crypto import (
    export_file_context,
    is_sensitive,
    key_ring_of,
    open_data,
    open_item_row,
)
from annotation_platform.core.sealed_file import MAGIC, SealedReader, SealedWriter
from annotation_platform.core.types import utcnow
from annotation_platform.data_export.repository import CopyLines, export_repository
from annotation_platform.data_export.schemas import FILE_EXTENSIONS, MEDIA_TYPES, ExportCreate
from annotation_platform.data_export.storage import READ_CHUNK_BYTES, ExportStorage, export_storage
from annotation_platform.job.repository import job_repository
from annotation_platform.job.runner import JobCancelled, JobLost, run_file_job
from annotation_platform.job.service import job_service
from annotation_platform.models import Container, Job, JobKind, JobStatus, User
from annotation_platform.project.service import ProjectAccess

logger = logging.getLogger(__name__)

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPIRE_PAGE = 500
PROGRESS_INTERVAL = 0.5


class ContainerNotInProject(ValidationFailed):
    code = "container_not_in_project"
    title = "Container not in this project"
    description = "`container_ids` may only name containers of the project in the path."


class ExportNotReady(Conflict):
    code = "export_not_ready"
    title = "Export not ready"
    description = "The export job has not succeeded (yet). Follow the job until it is `succeeded`, then download."


class ExportExpired(AppError):
    status = 410
    code = "export_expired"
    title = "Export expired"
    description = "The export's file was removed after EXPORT_RETENTION_HOURS. Start a new export."


def file_name(job: Job) -> str:
    """The stored file's name: `<job id>.<format>`."""
    file_format = job.params["format"]
    return f"{job.id}.{FILE_EXTENSIONS.get(file_format, file_format)}"


def download_name(project_name: str, created_at: datetime, file_format: str) -> str:
    """`<project>-<YYYY-MM-DD>.<ext>`, with the project's name folded to safe ASCII."""
    ascii_name = unicodedata.normalize("NFKD", project_name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", ascii_name).strip("-.")[:100] or "export"
    return f"{slug}-{created_at.date().isoformat()}.{FILE_EXTENSIONS.get(file_format, file_format)}"


@dataclass(frozen=True)
class ExportFile:
    """A finished export, ready to be sent."""

    storage: ExportStorage
    name: str
    filename: str
    media_type: str


# --- the request side ---------------------------------------------------------------------------------------------


class ExportService:
    async def create(
        self,
        session: AsyncSession,
        *,
        access: ProjectAccess,
        user: User,
        data: ExportCreate,
        idempotency_key: str | None,
    ) -> tuple[Job, bool]:
        """The queued export job and True, or the caller's earlier job with this Idempotency-Key and False."""
        if idempotency_key is not None:
            existing = await job_service.find_idempotent(
                session, user=user, key=idempotency_key, kind=JobKind.export, project_id=access.project.id
            )
            if existing is not None:
                return existing, False
        container_ids = list(dict.fromkeys(data.container_ids)) if data.container_ids is not None else None
        if container_ids is not None:
            found = await export_repository.containers(session, access.project.id, container_ids)
            missing = set(container_ids) - {container.id for container in found}
            if missing:
                # The same answer whether the container is elsewhere or nowhere: nothing leaks.
                raise ContainerNotInProject(
                    f"Not containers of this project: {', '.join(sorted(str(i) for i in missing))}."
                )
        params = {
            "format": data.format,
            "container_ids": [str(i) for i in container_ids] if container_ids is not None else None,
            "annotation_types": sorted(set(data.annotation_types)) if data.annotation_types is not None else None,
            "project_name": access.project.name,
        }
        if data.annotator is not None:
            params["annotator"] = data.annotator
        return await job_service.create(
            session,
            kind=JobKind.export,
            user=user,
            params=params,
            project_id=access.project.id,
            idempotency_key=idempotency_key,
        )

    def download(self, *, job: Job, settings: Settings, now: datetime | None = None) -> ExportFile:
        """The caller's finished export: 409 while it is not succeeded, 410 once its file has expired."""
        if job.kind != JobKind.export.value:
            raise NotFound("This job is not an export: it has nothing to download.")
        if job.status != JobStatus.succeeded.value:
            raise ExportNotReady(f"The export is {job.status}.")
        storage = export_storage(settings)
        name = file_name(job)
        now = now or utcnow()
        cutoff = now - timedelta(hours=settings.export_retention_hours)
        expired = (job.result or {}).get("expired") or (job.finished_at is not None and job.finished_at < cutoff)
        if expired or not storage.exists(name):
            raise ExportExpired("This export's file has expired; start a new export.")
        file_format = job.params["format"]
        return ExportFile(
            storage=storage,
            name=name,
            filename=download_name(job.params.get("project_name") or "export", job.created_at, file_format),
            media_type=MEDIA_TYPES[file_format],
        )

    def sealed_chunks(self, found: ExportFile, *, job: Job, key_ring: KeyRing) -> Iterator[bytes] | None:
        """The plaintext of a sensitive project's export, decrypted as it is sent; None for a plain file. The
        first chunk is decrypted before anything is sent, so a missing key answers 503, not half a file."""
        source = found.storage.open_for_read(found.name)
        if source.read(len(MAGIC)) != MAGIC:
            source.close()
            return None
        source.seek(0)
        try:
            reader = SealedReader(source, key_ring, export_file_context(job.id))
            first = reader.read(READ_CHUNK_BYTES)
        except BaseException:
            source.close()
            raise

        def chunks() -> Iterator[bytes]:
            try:
                chunk = first
                while chunk:
                    yield chunk
                    chunk = reader.read(READ_CHUNK_BYTES)
            finally:
                source.close()

        return chunks()

    async def expire(
        self,
        session: AsyncSession,
        *,
        settings: Settings,
        storage: ExportStorage | None = None,
        now: datetime | None = None,
    ) -> int:
        """Deletes the files of exports older than EXPORT_RETENTION_HOURS and marks their results expired; also the
        half-written files of writers killed that long ago."""
        storage = storage or export_storage(settings)
        now = now or utcnow()
        cutoff = now - timedelta(hours=settings.export_retention_hours)
        storage.remove_partials(cutoff)
        expired = 0
        after: uuid.UUID | None = None
        while jobs := await export_repository.finished_exports_before(session, cutoff, after, EXPIRE_PAGE):
            after = jobs[-1].id
            for job in jobs:
                if (job.result or {}).get("expired"):
                    continue
                storage.delete(file_name(job))
                result = {**(job.result or {}), "expired": True, "expired_at": now.isoformat()}
                await job_repository.set_values(session, job.id, result=result)
                expired += 1
        return expired


export_service = ExportService()


# --- the worker side ----------------------------------------------------------------------------------------------


def neutralise(cell: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading `'`, which shows it as text."""
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def label_value(annotation_type: str, data: Any) -> Any:
    """What an annotation is in a label column: the thread id of a thread, else `value`, else the whole data."""
    if isinstance(data, dict):
        if annotation_type == "thread" and "thread_id" in data:
            return data["thread_id"]
        if "value" in data:
            return data["value"]
    return data


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


class _Records:
    """Builds the exported object of an item from its row and its annotations."""

    def __init__(self, container_name: str, container_id: str) -> None:
        self.container_name = container_name
        self.container_id = container_id

    def build(self, item: Any, annotations: Sequence[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The item's object and its label cells, `{"<type>:<annotator>": value}` (a plain label wins over a span,
        then the oldest)."""
        labels: dict[str, Any] = {}
        spans: dict[str, Any] = {}
        listed = []
        for annotation in annotations:
            listed.append(
                {
                    "type": annotation.type,
                    "data": annotation.data,
                    "start_offset": annotation.start_offset,
                    "end_offset": annotation.end_offset,
                    "author": annotation.author,
                    "version": annotation.version,
                    "is_gold": annotation.is_gold,
                }
            )
            key = f"{annotation.type}:{annotation.author}"
            chosen = labels if annotation.start_offset is None else spans
            chosen.setdefault(key, label_value(annotation.type, annotation.data))
        for key, value in spans.items():
            labels.setdefault(key, value)
        metadata = item.metadata if isinstance(item.metadata, dict) else {}
        record = {
            "container": self.container_name,
            "container_id": self.container_id,
            "external_id": item.external_id,
            "sequence": item.sequence,
            "content": item.content,
            "parent": item.parent,
            "metadata": metadata,
            "annotations": listed,
        }
        return record, labels


class _Writer:
    csv_columns: tuple[Sequence[str], Sequence[str]] | None = None
    """(metadata keys, label keys) of a CSV: the cells PostgreSQL must build."""
    streams = True
    """On PostgreSQL, whole containers come as lines (`write_lines`); else as pages of cells (`write_built`)."""

    def begin(self) -> bytes:
        return b""

    def write(self, record: dict[str, Any], labels: dict[str, Any]) -> bytes:
        raise NotImplementedError

    def write_built(self, container_name: str, rows: Sequence[Any]) -> bytes:
        """The rows of one `ExportRepository.built_page` (PostgreSQL)."""
        raise NotImplementedError

    def write_lines(self, lines: list[bytes]) -> bytes:
        """Lines of `ExportRepository.stream_lines` (PostgreSQL), each an item's JSON object or CSV line."""
        raise NotImplementedError

    def end(self) -> bytes:
        return b""


def _flat(record: dict[str, Any], labels: dict[str, Any]) -> dict[str, Any]:
    """The object with import-ready flat copies: `metadata.<key>` and `<type>:<annotator>` at the top level."""
    flat = dict(record)
    for key, value in record["metadata"].items():
        flat[f"metadata.{key}"] = value
    flat.update(labels)
    return flat


class _JsonLinesWriter(_Writer):
    def write(self, record: dict[str, Any], labels: dict[str, Any]) -> bytes:
        return orjson.dumps(_flat(record, labels)) + b"\n"

    def write_lines(self, lines: list[bytes]) -> bytes:
        return b"\n".join(lines) + b"\n" if lines else b""


class _JsonWriter(_Writer):
    def __init__(self) -> None:
        self.first = True

    def begin(self) -> bytes:
        return b"["

    def write(self, record: dict[str, Any], labels: dict[str, Any]) -> bytes:
        return self._separator() + orjson.dumps(_flat(record, labels))

    def write_lines(self, lines: list[bytes]) -> bytes:
        if not lines:
            return b""
        return self._separator() + b",\n".join(lines)

    def _separator(self) -> bytes:
        separator = b"\n" if self.first else b",\n"
        self.first = False
        return separator

    def end(self) -> bytes:
        return b"]\n" if self.first else b"\n]\n"


class _CsvWriter(_Writer):
    """One row an item; one column per metadata key and per (type, annotator)."""

    def __init__(self, metadata_keys: Sequence[str], label_columns: Sequence[tuple[str, str]]) -> None:
        self.metadata_keys = list(metadata_keys)
        self.label_keys = [f"{type_}:{author}" for type_, author in label_columns]
        self.csv_columns = (self.metadata_keys, self.label_keys)
        self.buffer = io.StringIO()
        self.csv = csv.writer(self.buffer, lineterminator="\r\n")

    def _row(self, cells: list[str]) -> bytes:
        self.buffer.seek(0)
        self.buffer.truncate()
        self.csv.writerow([neutralise(cell) for cell in cells])
        return self.buffer.getvalue().encode("utf-8")

    def begin(self) -> bytes:
        base = ["container", "external_id", "sequence", "content", "parent"]
        return self._row([*base, *(f"metadata.{key}" for key in self.metadata_keys), *self.label_keys])

    def write(self, record: dict[str, Any], labels: dict[str, Any]) -> bytes:
        metadata = record["metadata"]
        cells = [
            record["container"],
            record["external_id"],
            str(record["sequence"]),
            record["content"],
            record["parent"] or "",
            *(_text(metadata.get(key)) for key in self.metadata_keys),
            *(_text(labels.get(key)) for key in self.label_keys),
        ]
        return self._row(cells)

    def write_lines(self, lines: list[bytes]) -> bytes:
        return b"\r\n".join(lines) + b"\r\n" if lines else b""


class _ReplyStructureWriter(_Writer):
    """The IRC disentanglement corpus's reply structure (Kummerfeld et al. 2019): one line a message,
    `<linked> <index> -`, where `index` numbers the messages from 0 in file order and `linked` is the earlier
    message it links to (itself when it starts a conversation). Its evaluation scripts read threads as the
    connected components of these links.

    With an annotator (or `gold`), a message links to its parent when the annotator put both in the same
    thread, else to the previous message of its thread; an unlabelled message links to itself. Without one, a
    message links to its parent. Links never cross containers; indexes run on across them. On PostgreSQL the
    page comes as CSV cells: the external id, the parent and the one label column needed."""

    streams = False

    def __init__(self, annotator: str | None) -> None:
        self.label_key = f"thread:{annotator}" if annotator is not None else None
        self.csv_columns = ((), (self.label_key,) if self.label_key is not None else ())
        self.index = 0
        self.container: str | None = None
        self.by_external_id: dict[str, tuple[int, str | None]] = {}
        self.last_of_thread: dict[str, int] = {}

    def write(self, record: dict[str, Any], labels: dict[str, Any]) -> bytes:
        label = labels.get(self.label_key) if self.label_key is not None else None
        return self._line(record["container_id"], record["external_id"], record["parent"], label)

    def write_built(self, container_name: str, rows: Sequence[Any]) -> bytes:
        return b"".join(
            self._line(container_name, row.external_id, row.parent, row.l0 if self.label_key is not None else None)
            for row in rows
        )

    def _line(self, container: str, external_id: str, parent_id: str | None, value: Any) -> bytes:
        if container != self.container:
            self.container = container
            self.by_external_id = {}
            self.last_of_thread = {}
        index = self.index
        self.index += 1
        label = _text(value) if value is not None else None
        parent = self.by_external_id.get(parent_id) if parent_id is not None else None
        linked = index
        if self.label_key is None:
            if parent is not None:
                linked = parent[0]
        elif label is not None:
            same_thread = parent is not None and parent[1] == label
            linked = parent[0] if parent is not None and same_thread else self.last_of_thread.get(label, index)
            self.last_of_thread[label] = index
        self.by_external_id[external_id] = (index, label)
        return f"{linked} {index} -\n".encode()


async def run_export(
    session_factory: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    *,
    settings: Settings | None = None,
    storage: ExportStorage | None = None,
) -> None:
    """Runs the queued export job `job_id` to its end (succeeded, failed or cancelled).

    Nothing happens when the job is not queued (cancelled meanwhile, or a duplicate message).
    """
    settings = settings or get_settings()
    storage = storage or export_storage(settings)
    async with session_factory() as session, session.begin():
        job = await job_service.claim(session, job_id=job_id)
    if job is None:
        logger.info("export %s: not queued any more; nothing to do", job_id)
        return
    exporter = _Exporter(session_factory, job, settings, storage)
    await run_file_job(
        exporter.run(),
        what=f"export {job_id}",
        logger=logger,
        discard=lambda: storage.delete(exporter.name),
        finish=exporter.finish,
    )


class _Exporter:
    def __init__(
        self,
        session_factory: async_sessionmaker[AsyncSession],
        job: Job,
        settings: Settings,
        storage: ExportStorage,
    ) -> None:
        self.session_factory = session_factory
        self.job = job
        self.settings = settings
        self.storage = storage
        self.params = job.params
        self.format = str(self.params["format"])
        self.name = file_name(job)
        ids = self.params.get("container_ids")
        self.container_ids = [uuid.UUID(i) for i in ids] if ids is not None else None
        self.types: list[str] | None = self.params.get("annotation_types")
        self.items = 0
        self.key_ring: KeyRing | None = None
        self.annotations = 0

    async def finish(self, status: JobStatus, **values: Any) -> bool:
        async with self.session_factory() as session, session.begin():
            finished = await job_service.finish(session, job_id=self.job.id, status=status, **values)
        job_service.forget_cancel_request(job_id=self.job.id, settings=self.settings)
        return finished

    async def run(self) -> None:
        project_id = self.job.project_id
        if project_id is None:
            raise RuntimeError(f"export {self.job.id} has no project")
        page_size = self.settings.export_batch_size
        async with self.session_factory() as session:
            postgres = session.get_bind().dialect.name == "postgresql"
            if postgres:
                # One snapshot for the whole file; read only.
                await session.connection(
                    execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}
                )
            # A sensitive project's values are sealed: the database cannot build its lines, so it goes through
            # the Python builder (as on SQLite), and the file is sealed on disk (docs/exports.md).
            self.key_ring = key_ring_of(session) if await is_sensitive(session, project_id) else None
            built = postgres and self.key_ring is None
            containers = await export_repository.containers(session, project_id, self.container_ids)
            ids = [container.id for container in containers]
            total = sum(container.item_count for container in containers)
            writer: _Writer
            if self.format == "csv":
                writer = _CsvWriter(
                    await self._metadata_keys(session, ids),
                    await export_repository.label_columns(session, ids, self.types),
                )
            elif self.format == "json":
                writer = _JsonWriter()
            elif self.format == "reply_structure":
                writer = _ReplyStructureWriter(self.params.get("annotator"))
            else:
                writer = _JsonLinesWriter()
            await self._progress(0, total)
            with self.storage.open_for_write(self.name) as stored:
                out: BinaryIO = stored
                if self.key_ring is not None:
                    out = SealedWriter(stored, self.key_ring, export_file_context(self.job.id))  # type: ignore[assignment]
                out.write(writer.begin())
                for container in containers:
                    if built and writer.streams:
                        await self._stream(session, container, writer, out, total)
                        continue
                    after: tuple[int, uuid.UUID] | None = None
                    while True:
                        if built:
                            rows, chunk, annotations = await self._built_page(session, container, after, writer)
                        else:
                            rows, chunk, annotations = await self._page(session, container, after, writer)
                        if not rows:
                            break
                        out.write(chunk)
                        self.items += len(rows)
                        self.annotations += annotations
                        after = (rows[-1].sequence, rows[-1].id)
                        await self._progress(self.items, max(total, self.items))
                        if len(rows) < page_size:
                            break
                out.write(writer.end())
                if out is not stored:
                    out.close()
        result = {
            "items": self.items,
            "annotations": self.annotations,
            "bytes": self.storage.size(self.name),
            "file": self.name,
        }
        if not await self.finish(JobStatus.succeeded, result=result, done=self.items):
            raise JobLost()

    async def _stream(
        self, session: AsyncSession, container: Container, writer: _Writer, out: BinaryIO, total: int
    ) -> None:
        """The container through one COPY; progress (and whether the client cancelled) every PROGRESS_INTERVAL."""
        lines = CopyLines()
        reported = time.monotonic()

        async def sink(chunk: bytes) -> None:
            nonlocal reported
            rows = lines.feed(chunk)
            if rows:
                out.write(writer.write_lines(rows))
                self.items += len(rows)
            if time.monotonic() - reported >= PROGRESS_INTERVAL:
                reported = time.monotonic()
                await self._progress(self.items, max(total, self.items))

        await export_repository.stream_lines(
            session, container, types=self.types, csv_columns=writer.csv_columns, sink=sink
        )
        self.annotations += lines.annotations
        await self._progress(self.items, max(total, self.items))

    async def _page(
        self, session: AsyncSession, container: Container, after: tuple[int, uuid.UUID] | None, writer: _Writer
    ) -> tuple[list[Any], bytes, int]:
        """A page of items and their annotations, built into the file's bytes here (SQLite)."""
        rows: list[Any] = await export_repository.items_page(
            session, container.id, after, self.settings.export_batch_size
        )
        annotations: list[Any] = await export_repository.annotations_of_items(
            session, [row.id for row in rows], self.types
        )
        if self.key_ring is not None:
            key_ring = self.key_ring
            rows = [SimpleNamespace(**open_item_row(key_ring, row)) for row in rows]
            annotations = [
                SimpleNamespace(**{**row._mapping, "data": open_data(key_ring, row.data, row.id)})
                for row in annotations
            ]
        by_item: dict[uuid.UUID, list[Any]] = {}
        for annotation in annotations:
            by_item.setdefault(annotation.item_id, []).append(annotation)
        records = _Records(container.name, str(container.id))
        chunk = bytearray()
        for row in rows:
            chunk += writer.write(*records.build(row, by_item.get(row.id, ())))
        return rows, bytes(chunk), len(annotations)

    async def _built_page(
        self, session: AsyncSession, container: Container, after: tuple[int, uuid.UUID] | None, writer: _Writer
    ) -> tuple[list[Any], bytes, int]:
        """A page whose cells PostgreSQL has picked out (the reply-structure format)."""
        rows = await export_repository.built_page(
            session,
            container,
            after,
            self.settings.export_batch_size,
            types=self.types,
            csv_columns=writer.csv_columns or ((), ()),
        )
        chunk = writer.write_built(container.name, rows)
        return rows, chunk, sum(row.annotations for row in rows)

    async def _metadata_keys(self, session: AsyncSession, container_ids: list[uuid.UUID]) -> list[str]:
        """The CSV's metadata columns; a sensitive project's metadata are opened here to find them."""
        if self.key_ring is None:
            return await export_repository.metadata_keys(session, container_ids)
        keys: set[str] = set()
        async for rows in export_repository.sealed_metadata(session, container_ids, self.settings.export_batch_size):
            for row in rows:
                metadata = open_item_row(self.key_ring, row)["metadata"]
                if isinstance(metadata, dict):
                    keys.update(metadata)
        return sorted(keys)

    async def _progress(self, done: int, total: int) -> None:
        """Reports progress and beats the heart, and stops if the client cancelled."""
        async with self.session_factory() as session, session.begin():
            await job_service.report_progress(session, job_id=self.job.id, done=done, total=total)
            cancelled = await job_service.cancel_requested(session, job_id=self.job.id, settings=self.settings)
        if cancelled:
            raise JobCancelled()
