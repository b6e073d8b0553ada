from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from annotation_platform.core.schemas import Id, ReadModel


class ChangeRead(ReadModel):
    position: int = Field(description="Increases along the feed; use the page's cursor, not this, to resume.")
    resource_type: Literal["container", "item", "annotation"]
    resource_id: Id
    container_id: Id | None = Field(description="The container of an item or annotation (a container's own id).")
    action: Literal["created", "updated", "deleted"]
    version: int | None = Field(
        description="An annotation's version after the change, a container's item schema version; null for items."
    )
    changed_by: Id | None = Field(description="Who made the change; null when nobody was signed in.")
    changed_at: datetime
