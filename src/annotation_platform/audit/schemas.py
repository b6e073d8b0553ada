from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

from annotation_platform.core.schemas import Id, ReadModel


class AuditEventRead(ReadModel):
    id: Id
    occurred_at: datetime
    actor_user_id: Id | None = Field(description="The user who acted (null for anonymous requests).")
    actor_api_key_id: Id | None = Field(description="The API key used, when one was.")
    action: str = Field(examples=["project.update"])
    resource_type: str
    resource_id: str | None
    project_id: Id | None
    before: dict[str, Any] | None = Field(description="The changed fields before the change (never secrets).")
    after: dict[str, Any] | None = Field(description="The changed fields after the change (never secrets).")
    ip: str | None
    user_agent: str | None
    request_id: str | None


class AuditFilters(BaseModel):
    """Query filters (not a closed model: the page parameters share the query string)."""

    project_id: uuid.UUID | None = None
    actor_user_id: uuid.UUID | None = None
    action: str | None = Field(default=None, max_length=64)
    resource_type: str | None = Field(default=None, max_length=32)
    resource_id: str | None = Field(default=None, max_length=64)
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
