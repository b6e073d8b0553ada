from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import Field, StringConstraints, model_validator

from annotation_platform.core.schemas import Id, IdRef, InputModel, JsonObject, PatchModel, ReadModel

MAX_CONTENT_LENGTH = 1_000_000

ExternalId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^\S(.*\S)?$"),
    Field(
        description="The id of the item in its source (e.g. the turn id); unique in its container.",
        examples=["VAC_R10_017"],
    ),
]
Content = Annotated[str, Field(max_length=MAX_CONTENT_LENGTH, description="The text to annotate.")]
Sequence = Annotated[int, Field(ge=0, le=2**62, description="Position in the container; items list in this order.")]


class _ParentRef(InputModel):
    parent_id: IdRef | None = Field(default=None, description="An item of the same container.")
    parent_external_id: ExternalId | None = Field(
        default=None,
        description="The parent by external id: an existing item or one in the same bulk request.",
    )

    @model_validator(mode="after")
    def _one_parent_reference(self) -> _ParentRef:
        if self.parent_id is not None and self.parent_external_id is not None:
            raise ValueError("give parent_id or parent_external_id, not both")
        return self


class ItemCreate(_ParentRef):
    external_id: ExternalId
    content: Content = ""
    metadata: JsonObject = Field(default_factory=dict)
    sequence: Sequence | None = Field(default=None, description="Defaults to after the last item.")


class ItemBulkCreate(InputModel):
    items: list[ItemCreate] = Field(
        min_length=1, max_length=10_000, description="Up to 10,000 items, written all or none."
    )


class ItemBulkUpdateRow(InputModel):
    id: IdRef
    metadata: JsonObject = Field(description="The item's new metadata (replaces the old); checked against the schema.")


class ItemBulkUpdate(InputModel):
    items: list[ItemBulkUpdateRow] = Field(
        min_length=1, max_length=10_000, description="Up to 10,000 items of this container, changed all or none."
    )


class ItemUpdate(PatchModel, _ParentRef):
    nullable_fields: ClassVar[frozenset[str]] = frozenset({"parent_id", "parent_external_id"})

    external_id: ExternalId | None = None
    content: Content | None = Field(default=None, examples=["Na minha opinião a vacinação deveria ser um dever."])
    metadata: JsonObject | None = None
    sequence: Sequence | None = None


class ItemRead(ReadModel):
    id: Id
    container_id: Id
    external_id: str
    content: str
    metadata: dict[str, Any] = Field(validation_alias="metadata_")
    sequence: int
    parent_id: Id | None
    schema_version: int = Field(
        description="The container's item schema version the metadata was last validated against (read-only)."
    )
    created_at: datetime
    updated_at: datetime


class ItemBulkRead(ReadModel):
    items: list[ItemRead]
