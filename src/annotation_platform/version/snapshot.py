"""The snapshot file, and the diff of two of them.

A snapshot is gzip-compressed JSON Lines. The first line describes the version (`"record": "version"`), then
come the containers by name, then the items, sorted by (container name, external id) in code-point order, each
with all its annotations. Both files of a diff are therefore sorted the same way, and the diff is a merge join
that holds one item of each side in memory, however large the versions are.

Nothing is compared by database id: a container is its name, an item its external id in that container, and an
annotation its content (data, offsets, gold mark) within its (item, annotator, type). So a project restored from
a version (new ids everywhere) compares equal to that version. The ids are kept in the file, for information.
"""

from __future__ import annotations

import gzip
import hashlib
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any, BinaryIO

import orjson

FORMAT = 1
ITEM_FIELDS = ("content", "metadata", "parent")
CONTAINER_FIELDS = ("type", "item_schema")
ANNOTATION_FIELDS = ("data", "start_offset", "end_offset", "is_gold")


class SnapshotCorrupt(Exception):
    """The file does not match its recorded checksum, or is not a snapshot."""


class HashingWriter:
    """A write-only file that counts and hashes what passes through it (the compressed bytes)."""

    def __init__(self, target: BinaryIO) -> None:
        self.target = target
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.size += len(data)
        self.target.write(data)
        return len(data)

    def flush(self) -> None:
        self.target.flush()


class HashingReader:
    """A read-only file that hashes what is read from it, to check it against the recorded checksum."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.digest = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.source.read(size)
        self.digest.update(data)
        return data

    def finish(self) -> str:
        while self.read(1024 * 1024):
            pass
        return self.digest.hexdigest()


class SnapshotWriter:
    """Writes the records of one snapshot; `checksum` and `size` are those of the compressed file."""

    def __init__(self, target: BinaryIO) -> None:
        self.hashing = HashingWriter(target)
        self.gzip = gzip.GzipFile(fileobj=self.hashing, mode="wb", compresslevel=6, mtime=0)
        self.lines: list[bytes] = []

    def write(self, record: dict[str, Any]) -> None:
        self.lines.append(orjson.dumps(record))
        if len(self.lines) >= 1000:
            self._drain()

    def _drain(self) -> None:
        if self.lines:
            self.gzip.write(b"\n".join(self.lines) + b"\n")
            self.lines = []

    def close(self) -> None:
        self._drain()
        self.gzip.close()

    @property
    def checksum(self) -> str:
        return self.hashing.digest.hexdigest()

    @property
    def size(self) -> int:
        return self.hashing.size


def read_records(source: BinaryIO, checksum: str) -> Iterator[dict[str, Any]]:
    """Every record of the file, in order; SnapshotCorrupt at the end when the checksum does not match."""
    hashing = HashingReader(source)
    with gzip.GzipFile(fileobj=hashing, mode="rb") as unzipped:  # type: ignore[call-overload]
        try:
            for line in unzipped:
                yield orjson.loads(line)
        except (OSError, EOFError, zlib.error, orjson.JSONDecodeError) as exc:
            raise SnapshotCorrupt(f"the snapshot file is unreadable: {exc}") from exc
    if hashing.finish() != checksum:
        raise SnapshotCorrupt("the snapshot file does not match its recorded SHA-256")


@dataclass
class Snapshot:
    """An open snapshot: its header, its containers by name, and the stream of its items."""

    header: dict[str, Any]
    containers: dict[str, dict[str, Any]]
    items: Iterator[dict[str, Any]]


def open_snapshot(source: IO[bytes], checksum: str) -> Snapshot:
    """The snapshot in `source`, checked against `checksum` before anything is read from it when the file can be
    read twice: a flipped byte inside the compressed stream can inflate to well-formed JSON of the wrong shape,
    which the end-of-stream check would catch only after a diff or a restore had tripped over it. A sealed file
    cannot be re-read, and needs no first pass: each of its chunks is authenticated before it is read."""
    if source.seekable():
        if HashingReader(source).finish() != checksum:  # type: ignore[arg-type]
            raise SnapshotCorrupt("the snapshot file does not match its recorded SHA-256")
        source.seek(0)
    records = read_records(source, checksum)  # type: ignore[arg-type]
    header = next(records, None)
    if header is None or header.get("record") != "version" or header.get("format") != FORMAT:
        raise SnapshotCorrupt("not a snapshot file of a known format")
    containers: dict[str, dict[str, Any]] = {}
    first_item: dict[str, Any] | None = None
    for record in records:
        if record.get("record") == "container":
            containers[record["name"]] = record
        else:
            first_item = record
            break

    def items() -> Iterator[dict[str, Any]]:
        if first_item is not None:
            yield first_item
            yield from records

    return Snapshot(header, containers, items())


# --- the diff -----------------------------------------------------------------------------------------------------


@dataclass
class Counts:
    added: int = 0
    removed: int = 0
    changed: int = 0

    def add(self, change: str) -> None:
        setattr(self, change, getattr(self, change) + 1)

    def as_dict(self) -> dict[str, int]:
        return {"added": self.added, "removed": self.removed, "changed": self.changed}


@dataclass
class DiffSummary:
    containers: Counts = field(default_factory=Counts)
    items: Counts = field(default_factory=Counts)
    annotations: Counts = field(default_factory=Counts)
    by_annotator: dict[tuple[str | None, str], Counts] = field(default_factory=dict)
    usernames: dict[str | None, str | None] = field(default_factory=dict)
    total: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "containers": self.containers.as_dict(),
            "items": self.items.as_dict(),
            "annotations": self.annotations.as_dict(),
            "annotations_by": [
                {"annotator_id": annotator, "annotator": self.usernames.get(annotator), "type": type_, **c.as_dict()}
                for (annotator, type_), c in sorted(self.by_annotator.items(), key=lambda e: (e[0][0] or "", e[0][1]))
            ],
        }


def _item_view(item: dict[str, Any]) -> dict[str, Any]:
    return {"id": item.get("id"), "sequence": item.get("sequence"), **{name: item.get(name) for name in ITEM_FIELDS}}


def _annotation_view(annotation: dict[str, Any]) -> dict[str, Any]:
    return {"id": annotation.get("id"), **{name: annotation.get(name) for name in ANNOTATION_FIELDS}}


def _content_key(annotation: dict[str, Any]) -> bytes:
    return orjson.dumps([annotation.get(name) for name in ANNOTATION_FIELDS], option=orjson.OPT_SORT_KEYS)


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return item["container"], item["external_id"]


def _changed_fields(old: dict[str, Any], new: dict[str, Any], names: tuple[str, ...]) -> list[str]:
    return [name for name in names if old.get(name) != new.get(name)]


class Differ:
    """Merges the item streams of two snapshots (`old`, then `new`) into change entries, counting as it goes."""

    def __init__(self) -> None:
        self.summary = DiffSummary()

    def _entry(self, kind: str, change: str, **values: Any) -> dict[str, Any]:
        self.summary.total += 1
        entry: dict[str, Any] = {
            "kind": kind,
            "change": change,
            "container": None,
            "external_id": None,
            "annotator_id": None,
            "annotator": None,
            "type": None,
            "fields": [],
            "before": None,
            "after": None,
        }
        entry.update(values)
        return entry

    def run(self, old: Snapshot, new: Snapshot) -> Iterator[dict[str, Any]]:
        yield from self._containers(old.containers, new.containers)
        old_item = next(old.items, None)
        new_item = next(new.items, None)
        while old_item is not None or new_item is not None:
            if new_item is None or (old_item is not None and _key(old_item) < _key(new_item)):
                yield from self._item(old_item, None)
                old_item = next(old.items, None)
            elif old_item is None or _key(new_item) < _key(old_item):
                yield from self._item(None, new_item)
                new_item = next(new.items, None)
            else:
                yield from self._item(old_item, new_item)
                old_item = next(old.items, None)
                new_item = next(new.items, None)

    def _containers(self, old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for name in sorted(old.keys() | new.keys()):
            before, after = old.get(name), new.get(name)
            if before is not None and after is not None:
                fields = _changed_fields(before, after, CONTAINER_FIELDS)
                if not fields:
                    continue
                change = "changed"
            else:
                fields, change = [], "added" if before is None else "removed"
            self.summary.containers.add(change)
            yield self._entry(
                "container",
                change,
                container=name,
                fields=fields,
                before={n: before.get(n) for n in CONTAINER_FIELDS} if before is not None else None,
                after={n: after.get(n) for n in CONTAINER_FIELDS} if after is not None else None,
            )

    def _item(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
        named = new or old or {}
        where = {"container": named.get("container"), "external_id": named.get("external_id")}
        if old is not None and new is not None:
            fields = _changed_fields(old, new, ITEM_FIELDS)
            if fields:
                self.summary.items.add("changed")
                yield self._entry(
                    "item", "changed", fields=fields, before=_item_view(old), after=_item_view(new), **where
                )
        else:
            change = "added" if old is None else "removed"
            self.summary.items.add(change)
            yield self._entry(
                "item",
                change,
                before=_item_view(old) if old is not None else None,
                after=_item_view(new) if new is not None else None,
                **where,
            )
        yield from self._annotations(
            old["annotations"] if old is not None else [], new["annotations"] if new is not None else [], where
        )

    def _annotations(
        self, old: list[dict[str, Any]], new: list[dict[str, Any]], where: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """Per (annotator, type): equal contents match first; what is left pairs up in order as changed, and
        the rest is added or removed."""
        groups: dict[tuple[str | None, str], tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        for side, listed in ((0, old), (1, new)):
            for annotation in listed:
                groups.setdefault((annotation.get("created_by"), annotation["type"]), ([], []))[side].append(annotation)
        for (annotator, type_), (before, after) in sorted(groups.items(), key=lambda g: (g[0][0] or "", g[0][1])):
            unmatched = Counter(_content_key(a) for a in after)
            unmatched.subtract(_content_key(a) for a in before)
            left = [a for a in before if _take(unmatched, _content_key(a), -1)]
            right = [a for a in after if _take(unmatched, _content_key(a), 1)]
            for index in range(max(len(left), len(right))):
                a = left[index] if index < len(left) else None
                b = right[index] if index < len(right) else None
                change = "changed" if a is not None and b is not None else "added" if a is None else "removed"
                named = b or a or {}
                self.summary.usernames[annotator] = named.get("annotator")
                self.summary.annotations.add(change)
                self.summary.by_annotator.setdefault((annotator, type_), Counts()).add(change)
                yield self._entry(
                    "annotation",
                    change,
                    annotator_id=annotator,
                    annotator=named.get("annotator"),
                    type=type_,
                    fields=_changed_fields(a, b, ANNOTATION_FIELDS) if a is not None and b is not None else [],
                    before=_annotation_view(a) if a is not None else None,
                    after=_annotation_view(b) if b is not None else None,
                    **where,
                )


def _take(unmatched: Counter[bytes], key: bytes, sign: int) -> bool:
    """True when this annotation is one of the unmatched ones of its side (and counts it off)."""
    if unmatched[key] * sign > 0:
        unmatched[key] -= sign
        return True
    return False
