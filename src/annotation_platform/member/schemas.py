from __future__ import annotations

from datetime import datetime

from annotation_platform.core.schemas import Id, InputModel, ReadModel
from annotation_platform.models import Role


class MemberRead(ReadModel):
    user_id: Id
    username: str
    role: Role
    added_at: datetime


class MemberPut(InputModel):
    role: Role
