"""Agreement, disagreements and gold sets of one annotation type in a container.

Every annotator's label of every item is read once (`Labels`); the measures themselves are the pure functions of
`metrics`. A report is kept in `agreement_results` with a fingerprint of the annotations it was computed from, and
served from there until that fingerprint changes. Small containers are computed in the request; beyond
AGREEMENT_INLINE_MAX_LABELS labels the request answers 202 with a job and a worker computes it (`run_agreement`).

Thread names are arbitrary per annotator (one's "3" may be another's "7"), so for clustering types the
annotators' threads are first *aligned*: each annotator's threads are matched one-to-one with the reference
annotator's (the first by username) by the Hungarian assignment, and items are compared through that matching.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from annotation_platform.agreement import metrics
from annotation_platform.agreement.repository import agreement_repository
from annotation_platform.agreement.schemas import (
    GOLD,
    AgreementRead,
    AnnotatorRead,
    ContextItemRead,
    GoldCreate,
    GoldRead,
    GroupRead,
    ItemLabelsRead,
    LabelRead,
    MeasureKind,
    PairRead,
)
from annotation_platform.config import Settings, get_settings
from annotation_platform.container.service import ContainerAccess
from annotation_platform.core.errors import Conflict, ValidationFailed
from annotation_platform.core.ids import uuid7
from annotation_platform.core.pagination import PageParams, decode_cursor, encode_cursor
from annotation_platform.core.types import utcnow
from annotation_platform.data_export.service import label_value
from annotation_platform.job.service import job_service
from annotation_platform.models import Job, JobKind, JobStatus, User
from annotation_platform.project.service import ProjectAccess

logger = logging.getLogger(__name__)

CLUSTERING_TYPES = frozenset({"thread"})


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


def default_kind(type_: str) -> MeasureKind:
    return "clustering" if type_ in CLUSTERING_TYPES else "categorical"


def options_key(kind: MeasureKind, window: int) -> str:
    return f"clustering;window={window}" if kind == "clustering" else "categorical"


def label_text(type_: str, data: Any) -> str:
    """An annotation's label as a string: a thread's `thread_id`, else `value`, else the data as JSON."""
    value = label_value(type_, data)
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


@dataclass
class Labels:
    """Every label of one type in one container: annotators' (the first whole-item annotation of each author on
    each item) and the gold set's, with the items in container order."""

    order: list[uuid.UUID] = field(default_factory=list)
    sequence: dict[uuid.UUID, int] = field(default_factory=dict)
    by_annotator: dict[str, dict[uuid.UUID, str]] = field(default_factory=dict)
    data: dict[tuple[str, uuid.UUID], Any] = field(default_factory=dict)
    user_ids: dict[str, uuid.UUID] = field(default_factory=dict)
    gold: dict[uuid.UUID, str] = field(default_factory=dict)

    @property
    def annotators(self) -> list[str]:
        return sorted(self.by_annotator)

    def labelled_items(self) -> list[uuid.UUID]:
        """Items at least one annotator (not the gold set) labelled, in order."""
        labelled = {item for labels in self.by_annotator.values() for item in labels}
        return [item for item in self.order if item in labelled]


async def load_labels(session: AsyncSession, container_id: uuid.UUID, type_: str) -> Labels:
    labels = Labels()
    for row in await agreement_repository.labels(session, container_id, type_):
        if row.item_id not in labels.sequence:
            labels.sequence[row.item_id] = row.sequence
            labels.order.append(row.item_id)
        text = label_text(type_, row.data)
        if row.is_gold:
            labels.gold.setdefault(row.item_id, text)
            continue
        mine = labels.by_annotator.setdefault(row.username, {})
        if row.item_id not in mine:
            mine[row.item_id] = text
            labels.data[(row.username, row.item_id)] = row.data
            labels.user_ids[row.username] = row.created_by
    return labels


def aligned_labels(labels: Labels, kind: MeasureKind) -> dict[str, dict[uuid.UUID, str | None]]:
    """Each annotator's labels in the reference annotator's terms (clustering), or as written (categorical).

    An annotator's thread that the best one-to-one matching leaves unmatched becomes None: it corresponds to no
    thread of the reference annotator."""
    names = labels.annotators
    if kind == "categorical" or not names:
        return {name: dict(labels.by_annotator[name]) for name in names}
    reference = labels.by_annotator[names[0]]
    aligned: dict[str, dict[uuid.UUID, str | None]] = {names[0]: dict(reference)}
    for name in names[1:]:
        own = labels.by_annotator[name]
        _, mine, theirs = metrics.paired(own, reference, labels.order)
        mapping = metrics.one_to_one_mapping(mine, theirs)
        aligned[name] = {item: _text_or_none(mapping.get(label)) for item, label in own.items()}
    return aligned


def _text_or_none(label: metrics.Label | None) -> str | None:
    return None if label is None else str(label)


def _votes_agree(values: Sequence[str | None]) -> bool:
    return None not in values and len(set(values)) == 1


def disagreeing_items(labels: Labels, kind: MeasureKind) -> list[uuid.UUID]:
    """Items labelled by two or more annotators whose (aligned) labels are not all the same, in order."""
    aligned = aligned_labels(labels, kind)
    found = []
    for item in labels.order:
        values = [mine[item] for mine in aligned.values() if item in mine]
        if len(values) >= 2 and not _votes_agree(values):
            found.append(item)
    return found


# --- the report ---------------------------------------------------------------------------------------------------


def compute_report(
    labels: Labels, *, container_id: uuid.UUID | None, type_: str, kind: MeasureKind, window: int
) -> AgreementRead:
    names = labels.annotators
    annotators = [
        AnnotatorRead(username=name, user_id=labels.user_ids[name], items=len(labels.by_annotator[name]))
        for name in names
    ]
    compared: list[tuple[str, str, dict[uuid.UUID, str], dict[uuid.UUID, str]]] = [
        (first, second, labels.by_annotator[first], labels.by_annotator[second])
        for first, second in combinations(names, 2)
    ]
    if labels.gold:
        annotators.append(AnnotatorRead(username=GOLD, user_id=None, items=len(labels.gold)))
        compared += [(name, GOLD, labels.by_annotator[name], labels.gold) for name in names]
    pairs = []
    for first, second, mine, theirs in compared:
        _, a, b = metrics.paired(mine, theirs, labels.order)
        if kind == "clustering":
            measures = metrics.clustering_measures(a, b, window)
        else:
            measures = {"percent_agreement": metrics.percent_agreement(a, b), "cohen_kappa": metrics.cohen_kappa(a, b)}
        pairs.append(PairRead(annotators=[first, second], items=len(a), metrics=measures))
    overall = None
    if kind == "categorical":
        units = [
            {name: labels.by_annotator[name][item] for name in names if item in labels.by_annotator[name]}
            for item in labels.order
        ]
        overall = GroupRead(
            annotators=len(names),
            items=sum(1 for unit in units if len(unit) >= 2),
            metrics={
                "fleiss_kappa": metrics.fleiss_kappa(units),
                "krippendorff_alpha": metrics.krippendorff_alpha(units),
            },
        )
    return AgreementRead(
        container_id=container_id,
        type=type_,
        kind=kind,
        window=window if kind == "clustering" else None,
        items=len(labels.labelled_items()),
        annotators=annotators,
        pairs=pairs,
        overall=overall,
        computed_at=utcnow(),
    )


def combine_reports(reports: Sequence[AgreementRead], *, type_: str, kind: MeasureKind, window: int) -> AgreementRead:
    """A project's report from its containers': each pair's and the overall figures are means weighted by items
    (over the containers where the figure is defined); counts are sums."""
    annotators: dict[str, AnnotatorRead] = {}
    for report in reports:
        for annotator in report.annotators:
            known = annotators.get(annotator.username)
            items = annotator.items + (known.items if known else 0)
            annotators[annotator.username] = AnnotatorRead(
                username=annotator.username, user_id=annotator.user_id, items=items
            )
    grouped: dict[tuple[str, ...], list[PairRead]] = {}
    for report in reports:
        for pair in report.pairs:
            grouped.setdefault(tuple(pair.annotators), []).append(pair)
    pairs = [
        PairRead(annotators=list(key), items=sum(p.items for p in found), metrics=_weighted(found))
        for key, found in sorted(grouped.items(), key=lambda entry: (GOLD in entry[0], entry[0]))
    ]
    overall = None
    groups = [report.overall for report in reports if report.overall is not None]
    if kind == "categorical":
        overall = GroupRead(
            annotators=len([name for name in annotators if name != GOLD]),
            items=sum(group.items for group in groups),
            metrics=_weighted(groups),
        )
    return AgreementRead(
        container_id=None,
        type=type_,
        kind=kind,
        window=window if kind == "clustering" else None,
        items=sum(report.items for report in reports),
        annotators=sorted(annotators.values(), key=lambda a: (a.username == GOLD, a.username)),
        pairs=pairs,
        overall=overall,
        containers=len(reports),
        computed_at=utcnow(),
    )


def _weighted(parts: Sequence[PairRead | GroupRead]) -> dict[str, float | None]:
    keys = list(dict.fromkeys(key for part in parts for key in part.metrics))
    combined: dict[str, float | None] = {}
    for key in keys:
        defined = [(part.metrics[key], part.items) for part in parts if part.metrics.get(key) is not None]
        weight = sum(items for _, items in defined)
        combined[key] = sum(value * items for value, items in defined if value is not None) / weight if weight else None
    return combined


async def fresh_report(
    session: AsyncSession, *, container_id: uuid.UUID, type_: str, kind: MeasureKind, window: int, limit: int | None
) -> AgreementRead | None:
    """The container's report from the cache when still valid, else computed and cached now; None when it is not
    cached and has more than `limit` labels (None: no limit)."""
    options = options_key(kind, window)
    count, fingerprint = await agreement_repository.fingerprint(session, container_id, type_)
    cached = await agreement_repository.cached(session, container_id, type_, options)
    if cached is not None and cached.fingerprint == fingerprint:
        return AgreementRead.model_validate(cached.result)
    if limit is not None and count > limit:
        return None
    labels = await load_labels(session, container_id, type_)
    report = compute_report(labels, container_id=container_id, type_=type_, kind=kind, window=window)
    await agreement_repository.store(
        session,
        container_id=container_id,
        type_=type_,
        options=options,
        fingerprint=fingerprint,
        result=report.model_dump(mode="json"),
        computed_at=report.computed_at,
    )
    return report


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

    rows = await agreement_repository.items(session, [item for _, item in chosen])
    page = []
    for _, item_id in chosen:
        row = rows[item_id]
        before, after_rows = (
            await agreement_repository.neighbours(session, container_id, row.sequence, row.id, context)
            if context
            else ([], [])
        )
        page.append(
            ItemLabelsRead(
                **context_item(row).model_dump(),
                before=[context_item(other) for other in before],
                after=[context_item(other) for other in after_rows],
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
        reports = []
        limit: int | None = settings.agreement_inline_max_labels
        for container in await agreement_repository.containers(session, access.project.id):
            report = await fresh_report(
                session, container_id=container.id, type_=type_, kind=kind, window=window, limit=limit
            )
            if report is None:
                return await self._job(
                    session,
                    user=user,
                    project_id=access.project.id,
                    container_id=None,
                    type_=type_,
                    kind=kind,
                    window=window,
                )
            reports.append(report)
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
        now = utcnow()
        rows = [
            {
                "id": uuid7(),
                "item_id": item,
                "container_id": container_id,
                "type": data.type,
                "data": value,
                "start_offset": None,
                "end_offset": None,
                "created_by": user.id,
                "version": 1,
                "is_gold": True,
                "created_at": now,
                "updated_at": now,
            }
            for item, value in chosen.items()
        ]
        await agreement_repository.insert_annotations(session, rows)
        return self._gold_read(access, data.type, data.source, labels, chosen.keys())

    async def delete_gold(self, session: AsyncSession, *, access: ContainerAccess, type_: str) -> None:
        await agreement_repository.delete_gold(session, access.container.id, type_)

    def _gold_read(self, access: ContainerAccess, type_: str, source: Any, labels: Labels, gold: Any) -> GoldRead:
        gold_items = set(gold)
        labelled = labels.labelled_items()
        return GoldRead(
            container_id=access.container.id,
            type=type_,
            source=source,
            gold_items=len(gold_items),
            open_items=sum(1 for item in labelled if item not in gold_items),
        )


def majority(labels: Labels, kind: MeasureKind) -> dict[uuid.UUID, Any]:
    """For each labelled item, the data of the label most annotators gave; ties (and, for threads, votes for
    threads that match none of the reference annotator's) are left out: they stay open."""
    aligned = aligned_labels(labels, kind)
    names = labels.annotators
    reference = names[0] if names else None
    chosen: dict[uuid.UUID, Any] = {}
    for item in labels.labelled_items():
        votes = Counter(aligned[name][item] for name in names if item in aligned[name])
        ranked = votes.most_common(2)
        winner, count = ranked[0]
        if winner is None or (len(ranked) > 1 and ranked[1][1] == count):
            continue
        voter = next(name for name in names if aligned[name].get(item) == winner)
        data = labels.data[(voter, item)]
        if kind == "clustering" and voter != reference and isinstance(data, dict):
            # The voter's thread name is theirs; the gold set speaks the reference annotator's names.
            data = {**data, "thread_id": winner} if "thread_id" in data else data
        chosen[item] = data
    return chosen


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
