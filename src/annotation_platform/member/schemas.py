from __future__ import annotations

from datetime import datetime

from pydantic import Field

from annotation_platform.core.schemas import Id, IdRef, InputModel, ReadModel
from annotation_platform.models import Role


class MemberRead(ReadModel):
    user_id: Id
    username: str
    role: Role
    added_at: datetime


class MemberPut(InputModel):
    role: Role


class OwnershipTransfer(InputModel):
    user_id: IdRef = Field(description="The member who becomes owner; the caller stays on as manager.")
