"""Every annotator's label of one type in a container, read once, and what is derived from the labels alone:
thread alignment, the items annotators differ on, the majority vote.

Thread names are arbitrary per annotator (one's "3" may be another's "7"), so for clustering types the
annotators' threads are first *aligned*: each annotator's threads are matched one-to-one with the reference
annotator's (the first by username) by the Hungarian assignment, and items are compared through that matching.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.agreement import metrics
from annotation_platform.agreement.repository import agreement_repository
from annotation_platform.agreement.schemas import MeasureKind
from annotation_platform.data_export.service import label_value

CLUSTERING_TYPES = frozenset({"thread"})


def default_kind(type_: str) -> MeasureKind:
    return "clustering" if type_ in CLUSTERING_TYPES else "categorical"


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
    return (await load_labels_of(session, [container_id], type_))[container_id]


async def load_labels_of(
    session: AsyncSession, container_ids: Sequence[uuid.UUID], type_: str
) -> dict[uuid.UUID, Labels]:
    """Each container's labels, read in one statement."""
    return {
        container_id: _labels(type_, rows)
        for container_id, rows in (await agreement_repository.labels(session, container_ids, type_)).items()
    }


def _labels(type_: str, rows: list[Any]) -> Labels:
    labels = Labels()
    for row in rows:
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
