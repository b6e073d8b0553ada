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
    sensitive: bool = Field(default=False, description="Marks projects whose data needs extra protection.")


class ProjectUpdate(PatchModel):
    name: Name | None = Field(default=None, examples=["Vaccination debates, round 2"])
    description: Description | None = Field(default=None, examples=["Second round, with the new guidelines."])
    type: TypeSlug | None = Field(default=None, examples=["chat_disentanglement"])
    settings: JsonObject | None = None


class ProjectRead(ReadModel):
    id: Id
    name: str
    description: str
    type: str
    settings: dict[str, object]
    sensitive: bool
    my_role: Role | None = Field(description="The caller's role; null for an administrator who is not a member.")
    created_at: datetime
    updated_at: datetime
