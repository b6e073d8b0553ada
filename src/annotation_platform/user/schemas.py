from __future__ import annotations

from datetime import datetime

from pydantic import EmailStr, Field

from annotation_platform.auth.schemas import Password, Username
from annotation_platform.core.schemas import Id, PatchModel, ReadModel


class UserRead(ReadModel):
    id: Id
    email: str
    username: str
    is_active: bool
    is_verified: bool
    is_superuser: bool
    created_at: datetime


class UserUpdateMe(PatchModel):
    """Changing the email or the password needs the current password."""

    username: Username | None = None
    email: EmailStr | None = Field(default=None, max_length=320)
    password: Password | None = None
    current_password: str | None = Field(default=None, max_length=256)


class UserAdminUpdate(PatchModel):
    username: Username | None = None
    email: EmailStr | None = Field(default=None, max_length=320)
    password: Password | None = None
    is_active: bool | None = None
    is_verified: bool | None = None
    is_superuser: bool | None = None
