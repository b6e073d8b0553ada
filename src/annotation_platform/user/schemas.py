from __future__ import annotations

from datetime import datetime

from pydantic import EmailStr, Field

from annotation_platform.api_key.schemas import ApiKeyRead
from annotation_platform.auth.schemas import Password, SessionRead, Username
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
    current_password: str | None = Field(default=None, max_length=256, examples=["a perfectly fine passphrase"])


class UserAdminUpdate(PatchModel):
    username: Username | None = None
    email: EmailStr | None = Field(default=None, max_length=320)
    password: Password | None = None
    is_active: bool | None = None
    is_verified: bool | None = None
    is_superuser: bool | None = None


class MembershipExport(ReadModel):
    project_id: Id
    project_name: str
    role: str
    added_at: datetime


class LinkedProviderExport(ReadModel):
    provider: str
    email: str | None
    created_at: datetime


class PersonalDataExport(ReadModel):
    """Everything the service keeps about one person, apart from the research data they produced (counted)."""

    user: UserRead
    memberships: list[MembershipExport]
    sessions: list[SessionRead]
    api_keys: list[ApiKeyRead]
    linked_providers: list[LinkedProviderExport]
    annotations_written: int = Field(
        description="Annotations they wrote (the annotations themselves are project data)."
    )
    audit_events: int = Field(description="Audit events naming them as the actor (with the addresses they came from).")
