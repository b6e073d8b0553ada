from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from annotation_platform.core.schemas import Id, InputModel, JsonObject, Name, PatchModel, ReadModel, TypeSlug

ITEM_SCHEMA_DESCRIPTION = "A JSON Schema (draft 2020-12) that every item's `metadata` must satisfy; null for none."


class ContainerCreate(InputModel):
    name: Name = Field(examples=["VAC_R10"])
    type: TypeSlug = Field(default="generic", examples=["chat_room"])
    item_schema: JsonObject | None = Field(default=None, description=ITEM_SCHEMA_DESCRIPTION)


class ContainerUpdate(PatchModel):
    nullable_fields: ClassVar[frozenset[str]] = frozenset({"item_schema"})

    name: Name | None = Field(default=None, examples=["Room 10"])
    type: TypeSlug | None = Field(default=None, examples=["chat_room"])
    item_schema: JsonObject | None = Field(default=None, description=ITEM_SCHEMA_DESCRIPTION)


class ContainerRead(ReadModel):
    id: Id
    project_id: Id
    name: str
    type: str
    item_schema: dict[str, Any] | None
    item_schema_version: int = Field(description="Version of `item_schema`: 1 at creation, one more at each change.")
    item_count: int
    created_at: datetime
    updated_at: datetime


class ItemSchemaVersionRead(ReadModel):
    """An item schema a container has had; items name the version they were validated against."""

    version: int
    item_schema: dict[str, Any] | None
    created_by: Id | None = Field(description="Who set this schema.")
    created_at: datetime
