from __future__ import annotations

from datetime import datetime

from pydantic import Field

from annotation_platform.core.schemas import (
    Description,
    Id,
    InputModel,
    JsonObject,
    Name,
    PatchModel,
    ReadModel,
    TypeSlug,
)
from annotation_platform.models import Role


class ProjectCreate(InputModel):
    name: Name = Field(examples=["Vaccination debates"])
    description: Description = ""
    type: TypeSlug = Field(default="generic", examples=["chat_disentanglement"])
    settings: JsonObject = Field(default_factory=dict)
    sensitive: bool = Field(
        default=False,
        description=(
            "Store the project's item content and metadata and its annotations' data encrypted (and every copy: "
            "history, snapshots, exports, webhook bodies); set at creation, never changed. See docs/security.md."
        ),
    )
    require_if_match: bool = Field(
        default=False,
        description="Make `If-Match` mandatory for changing, deleting and reverting annotations (428 without it).",
    )


class ProjectUpdate(PatchModel):
    name: Name | None = Field(default=None, examples=["Vaccination debates, round 2"])
    description: Description | None = Field(default=None, examples=["Second round, with the new guidelines."])
    type: TypeSlug | None = Field(default=None, examples=["chat_disentanglement"])
    settings: JsonObject | None = None
    require_if_match: bool | None = Field(
        default=None, description="Make `If-Match` mandatory for changing, deleting and reverting annotations."
    )


class ProjectRead(ReadModel):
    id: Id
    name: str
    description: str
    type: str
    settings: dict[str, object]
    sensitive: bool
    require_if_match: bool = Field(description="`If-Match` is mandatory for annotation changes (428 without it).")
    my_role: Role | None = Field(description="The caller's role; null for an administrator who is not a member.")
    created_at: datetime
    updated_at: datetime
