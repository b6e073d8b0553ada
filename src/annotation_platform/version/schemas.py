from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from annotation_platform.core.schemas import Id, IdRef, InputModel, Name, ReadModel
from annotation_platform.models import JobStatus, ProjectVersion

Tag = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"),
    Field(description="Letters, digits, `.`, `_` and `-`, starting with a letter or digit (e.g. `v1.0`)."),
]


class VersionCreate(InputModel):
    """What to snapshot: the whole project, or some of its containers."""

    tag: Tag
    message: str = Field(default="", max_length=10_000, description="Why this version was taken.")
    container_ids: list[IdRef] | None = Field(
        default=None, min_length=1, max_length=1000, description="Only these containers of the project (default: all)."
    )


class VersionRestore(InputModel):
    """The project the snapshot is restored into."""

    name: Name | None = Field(default=None, description="The new project's name (default: `<project> (<tag>)`).")


class VersionCounts(BaseModel):
    containers: int
    items: int
    annotations: int


class VersionRead(ReadModel):
    id: Id
    project_id: Id
    tag: str
    message: str
    container_ids: list[Id] | None = Field(description="The containers snapshotted; null for the whole project.")
    status: str = Field(description="The snapshot job's status: `queued`, `running`, `succeeded`, ...")
    job_id: Id | None
    created_by: Id | None
    created_at: datetime
    snapshot_at: datetime | None = Field(description="The instant the data was read (once succeeded).")
    checksum: str | None = Field(description="SHA-256 of the stored (compressed) file, once succeeded.")
    size_bytes: int | None
    counts: VersionCounts | None = Field(description="What the snapshot holds, once succeeded.")

    @classmethod
    def of(cls, version: ProjectVersion, job_status: str | None) -> VersionRead:
        status = job_status or (JobStatus.succeeded.value if version.checksum else JobStatus.failed.value)
        counts = None
        if version.containers is not None and version.items is not None and version.annotations is not None:
            counts = VersionCounts(containers=version.containers, items=version.items, annotations=version.annotations)
        return cls(
            id=version.id,
            project_id=version.project_id,
            tag=version.tag,
            message=version.message,
            container_ids=version.container_ids,
            status=status,
            job_id=version.job_id,
            created_by=version.created_by,
            created_at=version.created_at,
            snapshot_at=version.snapshot_at,
            checksum=version.checksum,
            size_bytes=version.size_bytes,
            counts=counts,
        )


class ChangeCounts(BaseModel):
    added: int
    removed: int
    changed: int


class AnnotatorChangeCounts(ChangeCounts):
    annotator_id: str | None = Field(description="The author's user id (null once the account is deleted).")
    annotator: str | None = Field(description="The author's username when the snapshot was taken.")
    type: str


class DiffSummary(BaseModel):
    containers: ChangeCounts
    items: ChangeCounts
    annotations: ChangeCounts
    annotations_by: list[AnnotatorChangeCounts] = Field(description="Annotation changes per annotator and type.")


class Change(BaseModel):
    kind: str = Field(description="`container`, `item` or `annotation`.")
    change: str = Field(description="`added`, `removed` or `changed`.")
    container: str | None = Field(description="The container's name.")
    external_id: str | None = Field(description="The item's external id (items and annotations).")
    annotator_id: str | None
    annotator: str | None
    type: str | None = Field(description="The annotation's type.")
    fields: list[str] = Field(description="What differs, for `changed`.")
    before: dict[str, Any] | None = Field(description="As in `against` (null when added).")
    after: dict[str, Any] | None = Field(description="As in this version (null when removed).")


class VersionDiff(BaseModel):
    """What changed from `against` to this version: counts of everything, and one page of the changes."""

    version_id: Id
    against_id: Id
    summary: DiffSummary
    items: list[Change]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page.")
    total: int | None = Field(default=None, description="Number of changes; only with `include_total=true`.")
