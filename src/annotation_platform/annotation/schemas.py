from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from annotation_platform.core.schemas import (
    Id,
    IdRef,
    InputModel,
    JsonObject,
    PatchModel,
    ReadModel,
    TypeSlug,
)
from annotation_platform.item.schemas import ExternalId


class _Offsets(InputModel):
    start_offset: int | None = Field(default=None, ge=0, le=2**31 - 1, description="First character (0-based).")
    end_offset: int | None = Field(default=None, ge=1, le=2**31 - 1, description="One past the last character.")

    @model_validator(mode="after")
    def _offsets_together(self) -> _Offsets:
        start, end = self.start_offset, self.end_offset
        if (start is None) != (end is None):
            raise ValueError("give both start_offset and end_offset, or neither")
        if start is not None and end is not None and end <= start:
            raise ValueError("end_offset must be greater than start_offset")
        return self


class AnnotationCreate(_Offsets):
    type: TypeSlug = Field(examples=["thread"])
    data: JsonObject = Field(default_factory=dict, examples=[{"thread_id": "5"}])
    is_gold: bool = Field(
        default=False,
        description="The adjudicated answer for this item and type (reviewers and above; one per item and type).",
    )


class AnnotationBulkRow(AnnotationCreate):
    item_id: IdRef | None = Field(default=None, description="The item, by id …")
    item_external_id: ExternalId | None = Field(default=None, description="… or by external id.")

    @model_validator(mode="after")
    def _one_item_reference(self) -> AnnotationBulkRow:
        if (self.item_id is None) == (self.item_external_id is None):
            raise ValueError("give exactly one of item_id and item_external_id")
        return self


class AnnotationBulkCreate(InputModel):
    items: list[AnnotationBulkRow] = Field(
        min_length=1, max_length=10_000, description="Up to 10,000 annotations, written all or none."
    )


class AnnotationBulkUpdateRow(PatchModel):
    """One annotation's change: a new `type` (e.g. moving it to another label set), new `data`, or both."""

    id: IdRef
    type: TypeSlug | None = Field(default=None, examples=["stance"])
    data: JsonObject | None = Field(default=None, examples=[{"value": "agree"}])


class AnnotationBulkUpdate(InputModel):
    items: list[AnnotationBulkUpdateRow] = Field(
        min_length=1, max_length=10_000, description="Up to 10,000 annotations of this container, changed all or none."
    )


class AnnotationUpdate(PatchModel):
    """Offsets change together; null for both removes them."""

    nullable_fields: ClassVar[frozenset[str]] = frozenset({"start_offset", "end_offset"})

    type: TypeSlug | None = Field(default=None, examples=["thread"])
    data: JsonObject | None = None
    start_offset: int | None = Field(default=None, ge=0, le=2**31 - 1)
    end_offset: int | None = Field(default=None, ge=1, le=2**31 - 1)

    @model_validator(mode="after")
    def _offsets_together(self) -> AnnotationUpdate:
        given = {"start_offset", "end_offset"} & self.model_fields_set
        if len(given) == 1:
            raise ValueError("change start_offset and end_offset together")
        if given and (self.start_offset is None) != (self.end_offset is None):
            raise ValueError("give both offsets, or null for both")
        if self.start_offset is not None and self.end_offset is not None and self.end_offset <= self.start_offset:
            raise ValueError("end_offset must be greater than start_offset")
        return self


class AnnotationRead(ReadModel):
    id: Id
    item_id: Id
    container_id: Id
    type: str
    data: dict[str, Any]
    start_offset: int | None
    end_offset: int | None
    created_by: Id | None = Field(description="The author's user id; null once their account is deleted.")
    version: int
    is_gold: bool = Field(default=False, description="The adjudicated (gold) answer for this item and type.")
    created_at: datetime
    updated_at: datetime


class AnnotationBulkRead(ReadModel):
    items: list[AnnotationRead]


class AnnotationRevert(InputModel):
    version: int = Field(ge=1, le=2**31 - 1, description="The earlier version whose content becomes current again.")


class AnnotationRevisionRead(ReadModel):
    """One version of an annotation: its content after a change, who made the change and when."""

    annotation_id: Id
    version: int = Field(description="The annotation's version after this change; a deletion is one past the last.")
    action: Literal["created", "updated", "reverted", "deleted"]
    item_id: Id
    container_id: Id
    type: str
    data: dict[str, Any]
    start_offset: int | None
    end_offset: int | None
    is_gold: bool
    reverted_from: int | None = Field(description="For `reverted`: the version whose content was restored.")
    changed_by: Id | None = Field(description="Who made the change.")
    changed_at: datetime
