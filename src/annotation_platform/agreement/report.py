"""Agreement reports: every pair's measures from the labels, a project's from its containers', and the cache.

A report is kept in `agreement_results` with a fingerprint of the annotations it was computed from, and served
from there until that fingerprint changes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from itertools import combinations

from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.agreement import metrics
from annotation_platform.agreement.labels import Labels, load_labels_of
from annotation_platform.agreement.repository import agreement_repository
from annotation_platform.agreement.schemas import (
    GOLD,
    AgreementRead,
    AnnotatorRead,
    GroupRead,
    MeasureKind,
    PairRead,
)
from annotation_platform.core.types import utcnow


def options_key(kind: MeasureKind, window: int) -> str:
    return f"clustering;window={window}" if kind == "clustering" else "categorical"


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
        # The newest of the combined reports (each cached until its container changes), so an unchanged project
        # answers the same document, and its ETag revalidates.
        computed_at=max((report.computed_at for report in reports), default=utcnow()),
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
    reports = await fresh_reports(
        session, container_ids=[container_id], type_=type_, kind=kind, window=window, limit=limit
    )
    return reports[0] if reports is not None else None


async def fresh_reports(
    session: AsyncSession,
    *,
    container_ids: Sequence[uuid.UUID],
    type_: str,
    kind: MeasureKind,
    window: int,
    limit: int | None,
) -> list[AgreementRead] | None:
    """The containers' reports (in their order), each from the cache when still valid, else computed and cached
    now; None when one is not cached and has more than `limit` labels (None: no limit).

    Set-wise, so that a project's many containers cost what one does: one statement for the fingerprints, one for
    the cache, and the stale containers' labels read and their reports stored in batches of at most `limit`
    labels (what one container may have), which bounds the memory a request holds."""
    options = options_key(kind, window)
    fingerprints = await agreement_repository.fingerprints(session, container_ids, type_)
    cached = await agreement_repository.cached(session, container_ids, type_, options)
    reports: dict[uuid.UUID, AgreementRead] = {}
    batches: list[list[uuid.UUID]] = [[]]
    batch_labels = 0
    for container_id in container_ids:
        count, fingerprint = fingerprints[container_id]
        found = cached.get(container_id)
        if found is not None and found.fingerprint == fingerprint:
            reports[container_id] = AgreementRead.model_validate(found.result)
            continue
        if limit is not None and count > limit:
            return None
        if limit is not None and batch_labels + count > limit:
            batches.append([])
            batch_labels = 0
        batches[-1].append(container_id)
        batch_labels += count
    for batch in filter(None, batches):
        labels = await load_labels_of(session, batch, type_)
        computed = {
            container_id: compute_report(
                labels[container_id], container_id=container_id, type_=type_, kind=kind, window=window
            )
            for container_id in batch
        }
        await agreement_repository.store(
            session,
            [
                {
                    "container_id": container_id,
                    "type": type_,
                    "options": options,
                    "fingerprint": fingerprints[container_id][1],
                    "result": report.model_dump(mode="json"),
                    "computed_at": report.computed_at,
                }
                for container_id, report in computed.items()
            ],
        )
        reports |= computed
    return [reports[container_id] for container_id in container_ids]
