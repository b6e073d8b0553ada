"""Project versions: accept a snapshot or restore (a queued job), run them in a worker, list, read and diff them.

A snapshot reads the project in one transaction (REPEATABLE READ and read only on PostgreSQL; one read
transaction on SQLite, whose WAL keeps it consistent beside writers) and streams it into a gzip JSON Lines file
in the export store, hashing the compressed bytes as they are written. A restore reads that file back, checks
the checksum, and writes a new project in one transaction: all of it, or nothing.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from annotation_platform.annotation.repository import annotation_repository, first_revisions
from annotation_platform.audit.service import audit_service
from annotation_platform.change.service import change_service
from annotation_platform.config import Settings, get_settings
from annotation_platform.container.repository import container_repository
from annotation_platform.core.crypto import KeyRing
from annotation_platform.core.errors import AppError, Conflict, Forbidden, NotFound
from annotation_platform.core.field_crypto import (
    EncryptionKeyUnavailable,
    item_content_context,
    item_metadata_context,
    key_ring_of,
    open_data,
    open_item_row,
    seal_data,
    seal_json,
    snapshot_file_context,
)
from annotation_platform.core.ids import uuid7
from annotation_platform.core.pagination import PageParams, decode_cursor, encode_cursor
from annotation_platform.core.sealed_file import SealedFileTruncated, SealedWriter, open_maybe_sealed
from annotation_platform.core.types import utcnow
from annotation_platform.data_export.repository import export_repository
from annotation_platform.data_export.service import ContainerNotInProject
from annotation_platform.data_export.storage import ExportStorage, export_storage
from annotation_platform.job.runner import JobCancelled, JobLost, run_file_job
from annotation_platform.job.service import job_service
from annotation_platform.models import (
    Container,
    ContainerSchemaVersion,
    Job,
    JobKind,
    JobStatus,
    Membership,
    Project,
    ProjectVersion,
    Role,
    User,
)
from annotation_platform.project.permissions import Action
from annotation_platform.project.repository import project_repository
from annotation_platform.project.service import ProjectAccess, project_service
from annotation_platform.version import snapshot
from annotation_platform.version.repository import version_repository
from annotation_platform.version.schemas import (
    Change,
    DiffSummary,
    VersionCreate,
    VersionDiff,
    VersionRead,
    VersionRestore,
)
from annotation_platform.webhook.events import VERSION_CREATED, emit

logger = logging.getLogger(__name__)

RESTORE_BATCH = 1000
RETAKEABLE = (JobStatus.failed.value, JobStatus.cancelled.value)


class VersionTagTaken(Conflict):
    code = "version_tag_taken"
    title = "Tag already used"
    description = "The project already has a version with this tag. Tags name one snapshot for good; pick another."


class VersionNotReady(Conflict):
    code = "version_not_ready"
    title = "Version not ready"
    description = "The version's snapshot job has not succeeded (yet). Follow the job, then try again."


class VersionCorrupt(AppError):
    status = 500
    code = "version_corrupt"
    title = "Version file corrupt"
    description = "The stored snapshot does not match its SHA-256, cannot be read or is gone. Restore it from a backup."


def storage_key(version_id: uuid.UUID) -> str:
    return f"version-{version_id}.jsonl.gz"


class VersionService:
    async def create(
        self,
        session: AsyncSession,
        *,
        access: ProjectAccess,
        user: User,
        data: VersionCreate,
        idempotency_key: str | None,
    ) -> Job:
        """The queued snapshot job. A tag is the project's for good, unless its snapshot failed or was cancelled:
        then the new request takes it over."""
        if idempotency_key is not None:
            existing = await job_service.find_idempotent(
                session, user=user, key=idempotency_key, kind=JobKind.snapshot, project_id=access.project.id
            )
            if existing is not None:
                return existing
        container_ids = list(dict.fromkeys(data.container_ids)) if data.container_ids is not None else None
        if container_ids is not None:
            found = await export_repository.containers(session, access.project.id, container_ids)
            missing = set(container_ids) - {container.id for container in found}
            if missing:
                raise ContainerNotInProject(
                    f"Not containers of this project: {', '.join(sorted(str(i) for i in missing))}."
                )
        taken = await version_repository.by_tag(session, access.project.id, data.tag)
        if taken is not None:
            old, status = taken
            if status not in RETAKEABLE:
                raise VersionTagTaken(f"This project already has a version tagged {data.tag!r}.")
            await version_repository.delete(session, old)
        version_id = uuid7()
        job, _created = await job_service.create(
            session,
            kind=JobKind.snapshot,
            user=user,
            params={"version_id": str(version_id), "tag": data.tag},
            project_id=access.project.id,
            idempotency_key=idempotency_key,
        )
        version = ProjectVersion(
            id=version_id,
            project_id=access.project.id,
            tag=data.tag,
            message=data.message,
            container_ids=[str(i) for i in container_ids] if container_ids is not None else None,
            job_id=job.id,
            created_by=user.id,
            created_at=utcnow(),
        )
        await version_repository.add(session, version)
        audit_service.record(
            session,
            action="version.create",
            resource_type="version",
            resource_id=version.id,
            project_id=access.project.id,
            after={"tag": data.tag, "message": data.message, "container_ids": version.container_ids},
        )
        return job

    async def get(self, session: AsyncSession, *, access: ProjectAccess, version_id: uuid.UUID) -> VersionRead:
        version, status = await self._find(session, access, version_id)
        return VersionRead.of(version, status)

    async def page(
        self, session: AsyncSession, *, access: ProjectAccess, params: PageParams
    ) -> tuple[list[VersionRead], str | None, int | None]:
        rows, cursor = await version_repository.page(session, access.project.id, params)
        total = await version_repository.count(session, access.project.id) if params.include_total else None
        return [VersionRead.of(row[0], row[1]) for row in rows], cursor, total

    async def restore(
        self,
        session: AsyncSession,
        *,
        access: ProjectAccess,
        user: User,
        version_id: uuid.UUID,
        data: VersionRestore,
        idempotency_key: str | None,
    ) -> Job:
        """The queued restore job; the new project is made by the worker (its id is in the job's result)."""
        if idempotency_key is not None:
            existing = await job_service.find_idempotent(
                session,
                user=user,
                key=idempotency_key,
                kind=JobKind.restore,
                project_id=access.project.id,
                target={"version_id": str(version_id)},
            )
            if existing is not None:
                return existing
        version = await self._ready(session, access, version_id)
        name = data.name or f"{access.project.name} ({version.tag})"[:200]
        job, _created = await job_service.create(
            session,
            kind=JobKind.restore,
            user=user,
            params={"version_id": str(version.id), "tag": version.tag, "name": name},
            project_id=access.project.id,
            idempotency_key=idempotency_key,
        )
        audit_service.record(
            session,
            action="version.restore",
            resource_type="version",
            resource_id=version.id,
            project_id=access.project.id,
            after={"tag": version.tag, "name": name, "job_id": str(job.id)},
        )
        return job

    async def diff(
        self,
        session: AsyncSession,
        *,
        access: ProjectAccess,
        user: User,
        version_id: uuid.UUID,
        against_id: uuid.UUID,
        params: PageParams,
        settings: Settings,
    ) -> VersionDiff:
        """One page of the changes from `against` to this version, and the counts of all of them.

        `against` may be a version of another project the caller may read (a restored copy and its source, say).
        Both files are read to the end on every call (the counts need it), in a thread: a page costs the same
        wherever it is, and memory holds one item of each side plus the page."""
        new = await self._ready(session, access, version_id)
        old = await self._ready(session, await self._access_to_version(session, user, against_id), against_id)
        start = decode_cursor(params.cursor, (int,))[0] if params.cursor is not None else 0
        storage = export_storage(settings)
        try:
            summary, page, total = await asyncio.to_thread(
                _diff_page, storage, old, new, start, params.limit, key_ring_of(session)
            )
        except snapshot.SnapshotCorrupt as exc:
            logger.error("version diff %s against %s: %s", new.id, old.id, exc)
            raise VersionCorrupt(str(exc)) from exc
        except FileNotFoundError as exc:
            raise VersionCorrupt("The snapshot file is missing from the store.") from exc
        next_cursor = encode_cursor([start + params.limit]) if start + params.limit < total else None
        return VersionDiff(
            version_id=new.id,
            against_id=old.id,
            summary=DiffSummary.model_validate(summary),
            items=[Change.model_validate(entry) for entry in page],
            next_cursor=next_cursor,
            total=total if params.include_total else None,
        )

    async def _find(
        self, session: AsyncSession, access: ProjectAccess, version_id: uuid.UUID
    ) -> tuple[ProjectVersion, str | None]:
        found = await version_repository.get(session, access.project.id, version_id)
        if found is None:
            raise NotFound("No such version.")
        return found

    async def _access_to_version(self, session: AsyncSession, user: User, version_id: uuid.UUID) -> ProjectAccess:
        """The caller's read access to the project of any version; 404 when there is none, as for no version."""
        version = await version_repository.get_by_id(session, version_id)
        if version is None:
            raise NotFound("No such version.")
        try:
            return await project_service.access(session, project_id=version.project_id, user=user, action=Action.read)
        except (NotFound, Forbidden) as exc:
            raise NotFound("No such version.") from exc

    async def _ready(self, session: AsyncSession, access: ProjectAccess, version_id: uuid.UUID) -> ProjectVersion:
        version, _status = await self._find(session, access, version_id)
        if version.checksum is None or version.storage_key is None:
            raise VersionNotReady(f"Version {version.tag!r} has no finished snapshot.")
        return version


version_service = VersionService()


def _diff_page(
    storage: ExportStorage, old: ProjectVersion, new: ProjectVersion, start: int, limit: int, key_ring: KeyRing
) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    differ = snapshot.Differ()
    page: list[dict[str, Any]] = []
    old_key, new_key = old.storage_key or "", new.storage_key or ""
    with storage.open_for_read(old_key) as old_file, storage.open_for_read(new_key) as new_file:
        old_plain = open_maybe_sealed(old_file, key_ring, snapshot_file_context(old.id))
        new_plain = open_maybe_sealed(new_file, key_ring, snapshot_file_context(new.id))
        changes = differ.run(
            snapshot.open_snapshot(old_plain, old.checksum or ""), snapshot.open_snapshot(new_plain, new.checksum or "")
        )
        for index, change in enumerate(changes):
            if start <= index < start + limit:
                page.append(change)
    return differ.summary.as_dict(), page, differ.summary.total


# --- the worker side ----------------------------------------------------------------------------------------------


@dataclass
class _Run:
    session_factory: async_sessionmaker[AsyncSession]
    job: Job
    settings: Settings

    async def finish(self, status: JobStatus, **values: Any) -> None:
        async with self.session_factory() as session, session.begin():
            await job_service.finish(session, job_id=self.job.id, status=status, **values)
        job_service.forget_cancel_request(job_id=self.job.id, settings=self.settings)

    async def progress(self, done: int, total: int, *, report: bool = True) -> None:
        """Reports progress (when `report`) and stops if the client cancelled."""
        async with self.session_factory() as session, session.begin():
            if report:
                await job_service.report_progress(session, job_id=self.job.id, done=done, total=total)
            cancelled = await job_service.cancel_requested(session, job_id=self.job.id, settings=self.settings)
        if cancelled:
            raise JobCancelled()


async def _claim(session_factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID) -> Job | None:
    async with session_factory() as session, session.begin():
        return await job_service.claim(session, job_id=job_id)


async def run_snapshot(
    session_factory: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    *,
    settings: Settings | None = None,
    storage: ExportStorage | None = None,
) -> None:
    """Runs the queued snapshot job `job_id` to its end; nothing happens when it is not queued."""
    settings = settings or get_settings()
    storage = storage or export_storage(settings)
    job = await _claim(session_factory, job_id)
    if job is None:
        logger.info("snapshot %s: not queued any more; nothing to do", job_id)
        return
    run = _Run(session_factory, job, settings)
    version_id = uuid.UUID(job.params["version_id"])
    name = storage_key(version_id)
    await run_file_job(
        _snapshot(run, version_id, storage, name),
        what=f"snapshot {job_id}",
        logger=logger,
        discard=lambda: storage.delete(name),
        finish=run.finish,
    )


async def _begin_consistent_read(session: AsyncSession) -> None:
    """One snapshot of the database for every statement of `session` from here on."""
    if session.get_bind().dialect.name == "postgresql":
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ", "postgresql_readonly": True})
    else:
        # The sqlite3 driver only opens a transaction before a write; an explicit BEGIN makes the reads one.
        connection = await session.connection()
        await connection.exec_driver_sql("BEGIN")


async def _snapshot(run: _Run, version_id: uuid.UUID, storage: ExportStorage, name: str) -> None:
    chunk = run.settings.export_batch_size
    async with run.session_factory() as session:
        await _begin_consistent_read(session)
        version = await version_repository.get_by_id(session, version_id)
        project = await session.get(Project, run.job.project_id) if run.job.project_id else None
        if version is None or project is None:
            raise RuntimeError("the version or its project is gone")
        snapshot_at = utcnow()
        wanted = [uuid.UUID(i) for i in version.container_ids] if version.container_ids is not None else None
        containers = sorted(
            await export_repository.containers(session, project.id, wanted), key=lambda container: container.name
        )
        total = sum(container.item_count for container in containers)
        items = annotations = 0
        await run.progress(0, total)
        # A sensitive project's snapshot holds its data opened, so the file itself is sealed (docs/versioning.md).
        key_ring = key_ring_of(session) if project.sensitive else None
        with storage.open_for_write(name) as stored:
            sealed = SealedWriter(stored, key_ring, snapshot_file_context(version.id)) if key_ring else None
            writer = snapshot.SnapshotWriter(sealed or stored)  # type: ignore[arg-type]
            writer.write(
                {
                    "record": "version",
                    "format": snapshot.FORMAT,
                    "version_id": str(version.id),
                    "tag": version.tag,
                    "snapshot_at": snapshot_at.isoformat(),
                    "project": {
                        "id": str(project.id),
                        "name": project.name,
                        "description": project.description,
                        "type": project.type,
                        "settings": project.settings,
                        "sensitive": project.sensitive,
                    },
                    "container_ids": version.container_ids,
                }
            )
            for container in containers:
                writer.write(
                    {
                        "record": "container",
                        "id": str(container.id),
                        "name": container.name,
                        "type": container.type,
                        "item_schema": container.item_schema,
                        "item_schema_version": container.item_schema_version,
                        "item_schemas": await version_repository.item_schemas(session, container.id),
                    }
                )
            for container in containers:
                async for rows in version_repository.items(session, container.id, chunk):
                    found: list[Any] = await version_repository.annotations_of_items(session, [r.id for r in rows])
                    if key_ring is not None:
                        rows = [SimpleNamespace(**open_item_row(key_ring, row)) for row in rows]
                        found = [
                            SimpleNamespace(**{**a._mapping, "data": open_data(key_ring, a.data, a.id)}) for a in found
                        ]
                    by_item: dict[uuid.UUID, list[dict[str, Any]]] = {}
                    for a in found:
                        by_item.setdefault(a.item_id, []).append(
                            {
                                "id": str(a.id),
                                "type": a.type,
                                "data": a.data,
                                "start_offset": a.start_offset,
                                "end_offset": a.end_offset,
                                "created_by": str(a.created_by) if a.created_by is not None else None,
                                "annotator": a.annotator,
                                "is_gold": a.is_gold,
                                "version": a.version,
                            }
                        )
                    for row in rows:
                        writer.write(
                            {
                                "record": "item",
                                "container": container.name,
                                "id": str(row.id),
                                "external_id": row.external_id,
                                "content": row.content,
                                "metadata": row.metadata,
                                "sequence": row.sequence,
                                "schema_version": row.schema_version,
                                "parent": row.parent,
                                "annotations": by_item.get(row.id, []),
                            }
                        )
                    items += len(rows)
                    annotations += len(found)
                    await run.progress(items, max(total, items))
            writer.close()
            if sealed is not None:
                sealed.close()
    values = {
        "snapshot_at": snapshot_at,
        "storage_key": name,
        "checksum": writer.checksum,
        "size_bytes": writer.size,
        "containers": len(containers),
        "items": items,
        "annotations": annotations,
    }
    result = {"version_id": str(version_id), "containers": len(containers), "items": items, "annotations": annotations}
    result.update(bytes=writer.size, sha256=writer.checksum)
    async with run.session_factory() as session, session.begin():
        await version_repository.set_values(session, version_id, **values)
        if not await job_service.finish(
            session, job_id=run.job.id, status=JobStatus.succeeded, result=result, done=items
        ):
            raise JobLost()
        if run.job.project_id is not None:
            await emit(session, run.job.project_id, VERSION_CREATED, {"version": result})
    job_service.forget_cancel_request(job_id=run.job.id, settings=run.settings)


async def run_restore(
    session_factory: async_sessionmaker[AsyncSession],
    job_id: uuid.UUID,
    *,
    settings: Settings | None = None,
    storage: ExportStorage | None = None,
) -> None:
    """Runs the queued restore job `job_id`: a new project, owned by whoever asked, holding the snapshot."""
    settings = settings or get_settings()
    storage = storage or export_storage(settings)
    job = await _claim(session_factory, job_id)
    if job is None:
        logger.info("restore %s: not queued any more; nothing to do", job_id)
        return
    run = _Run(session_factory, job, settings)
    try:
        async with session_factory() as session, session.begin():
            result = await _Restorer(run, session, storage).run()
            if not await job_service.finish(
                session, job_id=job.id, status=JobStatus.succeeded, result=result, done=result["items"]
            ):
                raise JobLost()
        job_service.forget_cancel_request(job_id=job.id, settings=settings)
    except JobCancelled:
        await run.finish(JobStatus.cancelled, error_message="Cancelled; nothing was written.")
    except JobLost:
        logger.warning("restore %s: the job was failed by the reaper meanwhile; rolled back", job_id)
    except (snapshot.SnapshotCorrupt, SealedFileTruncated) as exc:
        logger.error("restore %s: %s", job_id, exc)
        await run.finish(JobStatus.failed, error_message=f"Nothing was written: {exc}.")
    except EncryptionKeyUnavailable as exc:
        logger.error("restore %s: %s", job_id, exc.detail)
        await run.finish(JobStatus.failed, error_message=f"Nothing was written: {exc.detail}")
    except Exception:
        logger.exception("restore %s failed", job_id)
        await run.finish(JobStatus.failed, error_message="The restore failed unexpectedly; nothing was written.")


class _Restorer:
    """Writes the snapshot into a new project inside the caller's transaction, in batches of items."""

    def __init__(self, run: _Run, session: AsyncSession, storage: ExportStorage) -> None:
        self.run_ = run
        self.session = session
        self.storage = storage
        self.users: dict[str, uuid.UUID | None] = {}
        self.item_counts: dict[uuid.UUID, int] = {}
        self.project_id: uuid.UUID | None = None
        self.key_ring: KeyRing | None = None
        """Set when the restored project is sensitive: its rows are sealed before they are written."""
        # Progress writes would wait for SQLite's one write lock, which this transaction holds.
        self.report = session.get_bind().dialect.name == "postgresql"

    async def run(self) -> dict[str, Any]:
        job = self.run_.job
        version = await version_repository.get_by_id(self.session, uuid.UUID(job.params["version_id"]))
        if version is None or version.storage_key is None or version.checksum is None or job.created_by is None:
            raise RuntimeError("the version, its snapshot or the job's user is gone")
        total = version.items or 0
        await self.run_.progress(0, total, report=self.report)
        with self.storage.open_for_read(version.storage_key) as source:
            key_ring = key_ring_of(self.session)
            plain = open_maybe_sealed(source, key_ring, snapshot_file_context(version.id))
            opened = snapshot.open_snapshot(plain, version.checksum)
            self.key_ring = key_ring if opened.header["project"]["sensitive"] else None
            project = Project(
                id=uuid7(),
                name=job.params["name"],
                description=opened.header["project"]["description"],
                type=opened.header["project"]["type"],
                settings=opened.header["project"]["settings"],
                sensitive=opened.header["project"]["sensitive"],
                created_by=job.created_by,
            )
            owner = Membership(project_id=project.id, user_id=job.created_by, role=Role.owner.value)
            await project_repository.add(self.session, project, owner)
            containers: dict[str, uuid.UUID] = {}
            schema_versions: dict[uuid.UUID, int] = {}
            for container_name, record in opened.containers.items():
                # Files written before schema versions were kept name only the current schema: version 1.
                current = int(record.get("item_schema_version", 1))
                schemas = {int(kept["version"]): kept["item_schema"] for kept in record.get("item_schemas", [])}
                schemas[current] = record["item_schema"]
                container = Container(
                    id=uuid7(),
                    project_id=project.id,
                    name=container_name,
                    type=record["type"],
                    item_schema=record["item_schema"],
                    item_schema_version=current,
                    item_count=0,
                )
                await version_repository.add_container(self.session, container)
                for number, item_schema in sorted(schemas.items()):
                    await container_repository.add_schema_version(
                        self.session,
                        ContainerSchemaVersion(
                            container_id=container.id,
                            version=number,
                            item_schema=item_schema,
                            created_by=job.created_by,
                        ),
                    )
                containers[container_name] = container.id
                schema_versions[container.id] = current
            self.project_id = project.id
            await change_service.record(
                self.session,
                project_id=project.id,
                resource_type="container",
                action="created",
                entries=[(container_id, container_id, version) for container_id, version in schema_versions.items()],
                changed_by=job.created_by,
            )
            await version_repository.start_parent_links(self.session)
            items = annotations = 0
            batch: list[dict[str, Any]] = []
            for record in opened.items:
                batch.append(record)
                if len(batch) >= RESTORE_BATCH:
                    annotations += await self._write(batch, containers)
                    items += len(batch)
                    batch = []
                    await self.run_.progress(items, max(total, items), report=self.report)
            annotations += await self._write(batch, containers)
            items += len(batch)
        await version_repository.resolve_parent_links(self.session)
        for container_id, count in self.item_counts.items():
            await version_repository.set_item_count(self.session, container_id, count)
        return {
            "project_id": str(project.id),
            "version_id": str(version.id),
            "containers": len(containers),
            "items": items,
            "annotations": annotations,
        }

    async def _write(self, records: list[dict[str, Any]], containers: dict[str, uuid.UUID]) -> int:
        await self._known_users(records)
        item_rows: list[dict[str, Any]] = []
        links: list[dict[str, Any]] = []
        annotation_rows: list[dict[str, Any]] = []
        for record in records:
            container_id = containers[record["container"]]
            item_id = uuid7()
            self.item_counts[container_id] = self.item_counts.get(container_id, 0) + 1
            item_rows.append(
                {
                    "id": item_id,
                    "container_id": container_id,
                    "external_id": record["external_id"],
                    "content": record["content"],
                    "metadata": record["metadata"],
                    "sequence": record["sequence"],
                    "schema_version": record.get("schema_version", 1),
                    "parent_id": None,
                }
            )
            if record["parent"] is not None:
                links.append({"item_id": item_id, "container_id": container_id, "parent_external_id": record["parent"]})
            for a in record["annotations"]:
                annotation_rows.append(
                    {
                        "id": uuid7(),
                        "item_id": item_id,
                        "container_id": container_id,
                        "type": a["type"],
                        "data": a["data"],
                        "start_offset": a["start_offset"],
                        "end_offset": a["end_offset"],
                        "created_by": self.users.get(a["created_by"]) if a["created_by"] is not None else None,
                        "version": 1,
                        "is_gold": a["is_gold"],
                    }
                )
        if self.key_ring is not None:
            await version_repository.insert_items(self.session, [self._sealed_item(row) for row in item_rows])
        else:
            await version_repository.insert_items(self.session, item_rows)
        await version_repository.add_parent_links(self.session, links)
        if self.key_ring is not None:
            key_ring = self.key_ring
            await version_repository.insert_annotations(
                self.session, [seal_data(key_ring, row) for row in annotation_rows]
            )
        else:
            await version_repository.insert_annotations(self.session, annotation_rows)
        await self._history(item_rows, annotation_rows)
        return len(annotation_rows)

    def _sealed_item(self, row: dict[str, Any]) -> dict[str, Any]:
        key_ring = self.key_ring
        if key_ring is None:
            return row
        return {
            **row,
            "content": key_ring.encrypt_text(row["content"], context=item_content_context(row["id"])),
            "metadata": seal_json(key_ring, row["metadata"], item_metadata_context(row["id"])),
        }

    async def _history(self, item_rows: list[dict[str, Any]], annotation_rows: list[dict[str, Any]]) -> None:
        """The copy's annotations start their history at version 1 by the restoring user, and the new project's
        change feed lists what the restore created, as any other write path does."""
        restored_by, project_id, now = self.run_.job.created_by, self.project_id, utcnow()
        if project_id is None:
            raise RuntimeError("the restored project is made before its items")
        await annotation_repository.insert_revisions(
            self.session,
            first_revisions(annotation_rows, changed_by=restored_by, changed_at=now),
            sensitive=self.key_ring is not None,
        )
        await change_service.record(
            self.session,
            project_id=project_id,
            resource_type="item",
            action="created",
            entries=[(row["id"], row["container_id"], None) for row in item_rows],
            changed_by=restored_by,
        )
        await change_service.record(
            self.session,
            project_id=project_id,
            resource_type="annotation",
            action="created",
            entries=[(row["id"], row["container_id"], 1) for row in annotation_rows],
            changed_by=restored_by,
        )

    async def _known_users(self, records: list[dict[str, Any]]) -> None:
        """Authors whose account is gone become null, as a deleted user's annotations do."""
        wanted = {
            a["created_by"]
            for record in records
            for a in record["annotations"]
            if a["created_by"] is not None and a["created_by"] not in self.users
        }
        if not wanted:
            return
        existing = await version_repository.existing_users(self.session, [uuid.UUID(i) for i in wanted])
        for user_id in wanted:
            self.users[user_id] = uuid.UUID(user_id) if uuid.UUID(user_id) in existing else None
