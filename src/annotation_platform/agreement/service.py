"""Agreement, disagreements and gold sets of one annotation type in a container: the service.

Small containers are computed in the request; beyond AGREEMENT_INLINE_MAX_LABELS labels the request answers 202
with a job and a worker computes the report (`run_agreement`). The measures are `metrics`; the labels and their
alignment are `labels`; reports and their cache are `report`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from annotation_platform.agreement.labels import (
    Labels,
    aligned_labels,
    default_kind,
    disagreeing_items,
    load_labels,
    majority,
)
from annotation_platform.agreement.report import combine_reports, fresh_report, fresh_reports, options_key
from annotation_platform.agreement.repository import agreement_repository
from annotation_platform.agreement.schemas import (
    GOLD,
    AgreementRead,
    ContextItemRead,
    GoldCreate,
    GoldRead,
    GoldSource,
    ItemLabelsRead,
    LabelRead,
    MeasureKind,
)
from annotation_platform.annotation.events import emit_deleted_with
from annotation_platform.annotation.history import record_deletions
from annotation_platform.annotation.repository import annotation_repository
from annotation_platform.annotation.schemas import AnnotationBulkRow
from annotation_platform.annotation.service import annotation_service
from annotation_platform.audit.context import context_of
from annotation_platform.audit.service import audit_service
from annotation_platform.config import Settings, get_settings
from annotation_platform.container.service import ContainerAccess
from annotation_platform.core.errors import Conflict, ValidationFailed
from annotation_platform.core.pagination import PageParams, decode_cursor, encode_cursor
from annotation_platform.core.types import utcnow
from annotation_platform.job.service import job_service
from annotation_platform.models import Job, JobKind, JobStatus, User
from annotation_platform.project.service import ProjectAccess

logger = logging.getLogger(__name__)


class GoldExists(Conflict):
    code = "gold_exists"
    title = "Gold set exists"
    description = (
        "This container already has gold annotations of this type. Settle items one by one, or delete the gold set "
        "(DELETE .../gold?type=) and start again."
    )


class AnnotatorHasNoLabels(ValidationFailed):
    code = "annotator_has_no_labels"
    title = "Annotator has no labels"
    description = "`annotator` names nobody who labelled this container with this type. Check the username."


# --- pages of items with their labels -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ItemPage:
    items: list[ItemLabelsRead]
    next_cursor: str | None
    total: int


async def _item_page(
    session: AsyncSession,
    *,
    container_id: uuid.UUID,
    labels: Labels,
    kind: MeasureKind,
    selected: list[uuid.UUID],
    params: PageParams,
    context: int,
) -> ItemPage:
    keys = sorted((labels.sequence[item], item) for item in selected)
    if params.cursor is not None:
        after = decode_cursor(params.cursor, (int, uuid.UUID))
        keys = [key for key in keys if key > (after[0], after[1])]
    chosen = keys[: params.limit]
    next_cursor = encode_cursor(list(chosen[-1])) if len(keys) > params.limit else None
    aligned = aligned_labels(labels, kind) if kind == "clustering" else None

    def labels_of(item_id: uuid.UUID) -> list[LabelRead]:
        found = [
            LabelRead(
                annotator=name,
                label=labels.by_annotator[name][item_id],
                aligned=aligned[name].get(item_id) if aligned is not None else None,
            )
            for name in labels.annotators
            if item_id in labels.by_annotator[name]
        ]
        if item_id in labels.gold:
            found.append(LabelRead(annotator=GOLD, label=labels.gold[item_id]))
        return found

    def context_item(row: Any) -> ContextItemRead:
        return ContextItemRead(
            item_id=row.id,
            external_id=row.external_id,
            sequence=row.sequence,
            content=row.content,
            labels=labels_of(row.id),
        )

    found = await agreement_repository.items_in_context(session, container_id, [item for _, item in chosen], context)
    page = []
    for _, item_id in chosen:
        in_context = found.get(item_id)
        if in_context is None:  # deleted since its labels were read
            continue
        page.append(
            ItemLabelsRead(
                **context_item(in_context.row).model_dump(),
                before=[context_item(other) for other in in_context.before],
                after=[context_item(other) for other in in_context.after],
            )
        )
    return ItemPage(page, next_cursor, len(selected))


# --- the service --------------------------------------------------------------------------------------------------


class AgreementService:
    async def container_report(
        self,
        session: AsyncSession,
        *,
        access: ContainerAccess,
        user: User,
        type_: str,
        kind: MeasureKind | None,
        window: int,
        settings: Settings,
    ) -> AgreementRead | Job:
        """The report (cached or computed now), or the job that computes it for a big container."""
        kind = kind or default_kind(type_)
        container_id = access.container.id
        report = await fresh_report(
            session,
            container_id=container_id,
            type_=type_,
            kind=kind,
            window=window,
            limit=settings.agreement_inline_max_labels,
        )
        if report is not None:
            return report
        return await self._job(
            session,
            user=user,
            project_id=access.container.project_id,
            container_id=container_id,
            type_=type_,
            kind=kind,
            window=window,
        )

    async def project_report(
        self,
        session: AsyncSession,
        *,
        access: ProjectAccess,
        user: User,
        type_: str,
        kind: MeasureKind | None,
        window: int,
        settings: Settings,
    ) -> AgreementRead | Job:
        """Every container's report combined; a job when one of them is too big to compute in the request."""
        kind = kind or default_kind(type_)
        containers = await agreement_repository.containers(session, access.project.id)
        reports = await fresh_reports(
            session,
            container_ids=[container.id for container in containers],
            type_=type_,
            kind=kind,
            window=window,
            limit=settings.agreement_inline_max_labels,
        )
        if reports is None:
            return await self._job(
                session,
                user=user,
                project_id=access.project.id,
                container_id=None,
                type_=type_,
                kind=kind,
                window=window,
            )
        return combine_reports(reports, type_=type_, kind=kind, window=window)

    async def _job(
        self,
        session: AsyncSession,
        *,
        user: User,
        project_id: uuid.UUID,
        container_id: uuid.UUID | None,
        type_: str,
        kind: MeasureKind,
        window: int,
    ) -> Job:
        options = options_key(kind, window)
        existing = await agreement_repository.active_job(
            session, user_id=user.id, container_id=container_id, project_id=project_id, type_=type_, options=options
        )
        if existing is not None:
            return existing
        params = {
            "container_id": str(container_id) if container_id is not None else None,
            "project_id": str(project_id),
            "type": type_,
            "kind": kind,
            "window": window,
            "options": options,
        }
        job, _ = await job_service.create(
            session, kind=JobKind.agreement, user=user, params=params, project_id=project_id
        )
        return job

    async def disagreements(
        self,
        session: AsyncSession,
        *,
        access: ContainerAccess,
        type_: str,
        kind: MeasureKind | None,
        params: PageParams,
        context: int,
    ) -> ItemPage:
        kind = kind or default_kind(type_)
        labels = await load_labels(session, access.container.id, type_)
        return await _item_page(
            session,
            container_id=access.container.id,
            labels=labels,
            kind=kind,
            selected=disagreeing_items(labels, kind),
            params=params,
            context=context,
        )

    async def open_items(
        self,
        session: AsyncSession,
        *,
        access: ContainerAccess,
        type_: str,
        params: PageParams,
        context: int,
    ) -> ItemPage:
        """Labelled items that have no gold annotation yet: what is left to settle."""
        labels = await load_labels(session, access.container.id, type_)
        selected = [item for item in labels.labelled_items() if item not in labels.gold]
        return await _item_page(
            session,
            container_id=access.container.id,
            labels=labels,
            kind=default_kind(type_),
            selected=selected,
            params=params,
            context=context,
        )

    async def gold_status(self, session: AsyncSession, *, access: ContainerAccess, type_: str) -> GoldRead:
        labels = await load_labels(session, access.container.id, type_)
        return self._gold_read(access, type_, None, labels, labels.gold.keys())

    async def create_gold(
        self, session: AsyncSession, *, access: ContainerAccess, user: User, data: GoldCreate
    ) -> GoldRead:
        """The gold set, from one annotator's labels or from a majority vote; items without a clear winner stay
        open. Gold annotations are ordinary annotations authored by the adjudicator, marked `is_gold`."""
        container_id = access.container.id
        if await agreement_repository.gold_count(session, container_id, data.type):
            raise GoldExists("This container already has a gold set of this type.")
        labels = await load_labels(session, container_id, data.type)
        chosen: dict[uuid.UUID, Any]
        if data.source == "annotator":
            name = data.annotator or ""
            if name not in labels.by_annotator:
                raise AnnotatorHasNoLabels(f"{name!r} has no {data.type} labels in this container.")
            chosen = {item: labels.data[(name, item)] for item in labels.by_annotator[name]}
        else:
            chosen = majority(labels, default_kind(data.type))
        # Through the annotation service, as any bulk write: the same checks, and whatever it records.
        rows = [
            AnnotationBulkRow(item_id=item, type=data.type, data=value, is_gold=True) for item, value in chosen.items()
        ]
        if rows:
            await annotation_service.bulk_create(session, access=access, user=user, rows=rows)
        return self._gold_read(access, data.type, data.source, labels, chosen.keys())

    async def delete_gold(self, session: AsyncSession, *, access: ContainerAccess, type_: str) -> None:
        """Deletes the gold annotations of a type; like any deletion, each keeps its history, gets a feed entry and
        is in an `annotation.deleted` event."""
        changed_by, now = context_of(session).user_id, utcnow()
        gold = annotation_repository.gold_ids(access.container.id, type_)
        await emit_deleted_with(session, access.container.project_id, [gold])
        await record_deletions(session, gold, project_id=access.container.project_id, changed_by=changed_by, now=now)
        deleted = await agreement_repository.delete_gold(session, access.container.id, type_)
        audit_service.record(
            session,
            action="gold.delete",
            resource_type="container",
            resource_id=access.container.id,
            project_id=access.container.project_id,
            before={"type": type_, "annotations_deleted": deleted},
        )

    def _gold_read(
        self,
        access: ContainerAccess,
        type_: str,
        source: GoldSource | None,
        labels: Labels,
        gold: Iterable[uuid.UUID],
    ) -> GoldRead:
        gold_items = set(gold)
        labelled = labels.labelled_items()
        return GoldRead(
            container_id=access.container.id,
            type=type_,
            source=source,
            gold_items=len(gold_items),
            open_items=sum(1 for item in labelled if item not in gold_items),
        )


agreement_service = AgreementService()


# --- the worker side ----------------------------------------------------------------------------------------------


async def run_agreement(
    session_factory: async_sessionmaker[AsyncSession], job_id: uuid.UUID, *, settings: Settings | None = None
) -> None:
    """Computes (and caches) the report of an agreement job: one container's, or every container's of a project."""
    settings = settings or get_settings()
    async with session_factory() as session, session.begin():
        job = await job_service.claim(session, job_id=job_id)
    if job is None:
        logger.info("agreement %s: not queued any more; nothing to do", job_id)
        return
    params = job.params
    try:
        kind: MeasureKind = params["kind"]
        type_, window = str(params["type"]), int(params["window"])
        if params.get("container_id"):
            container_ids = [uuid.UUID(params["container_id"])]
        else:
            async with session_factory() as session:
                containers = await agreement_repository.containers(session, uuid.UUID(params["project_id"]))
            container_ids = [container.id for container in containers]
        reports = []
        for done, container_id in enumerate(container_ids):
            async with session_factory() as session, session.begin():
                await job_service.report_progress(session, job_id=job_id, done=done, total=len(container_ids))
            async with session_factory() as session, session.begin():
                report = await fresh_report(
                    session, container_id=container_id, type_=type_, kind=kind, window=window, limit=None
                )
            if report is not None:
                reports.append(report)
        if params.get("container_id") and reports:
            final = reports[0]
        else:
            final = combine_reports(reports, type_=type_, kind=kind, window=window)
        result = final.model_dump(mode="json")
        async with session_factory() as session, session.begin():
            await job_service.finish(
                session, job_id=job_id, status=JobStatus.succeeded, result=result, done=len(container_ids)
            )
    except Exception:
        logger.exception("agreement %s failed", job_id)
        async with session_factory() as session, session.begin():
            await job_service.finish(
                session, job_id=job_id, status=JobStatus.failed, error_message="The agreement computation failed."
            )
