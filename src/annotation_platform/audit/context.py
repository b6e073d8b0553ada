"""Who is acting in this unit of work: kept on the database session, so services record events without
every signature carrying the request."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import HTTPConnection, Request

from annotation_platform.core.clients import client_ip
from annotation_platform.core.db import SessionDep

CONTEXT_KEY = "audit_context"


@dataclass(frozen=True, slots=True)
class AuditContext:
    user_id: uuid.UUID | None = None
    api_key_id: uuid.UUID | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None

    @classmethod
    def of_request(
        cls, connection: HTTPConnection, *, user_id: uuid.UUID | None = None, api_key_id: uuid.UUID | None = None
    ) -> AuditContext:
        return cls(
            user_id=user_id,
            api_key_id=api_key_id,
            ip=client_ip(connection),
            user_agent=(connection.headers.get("user-agent") or "")[:512] or None,
            request_id=getattr(connection.state, "request_id", None),
        )


async def bind_anonymous_context(request: Request, session: SessionDep) -> None:
    """For routes without credentials (registration, login): the address and agent, no actor yet."""
    bind_context(session, AuditContext.of_request(request))


def bind_context(session: AsyncSession, context: AuditContext | Callable[[], AuditContext]) -> None:
    """`context`, or a function that makes it when a write first needs it: most requests are reads, for which
    reading the client address and agent was wasted work on every request."""
    session.info[CONTEXT_KEY] = context


def context_of(session: AsyncSession) -> AuditContext:
    context = session.info.get(CONTEXT_KEY)
    if callable(context):
        context = session.info[CONTEXT_KEY] = context()
    return context if isinstance(context, AuditContext) else AuditContext()
