"""SQL for users."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.models import (
    Annotation,
    ApiKey,
    AuditEvent,
    AuthSession,
    Membership,
    OAuthAccount,
    Project,
    Role,
    User,
)


class UserRepository:
    keyset = Keyset(columns=(User.id,), kinds=(uuid.UUID,))

    async def get(self, session: AsyncSession, user_id: uuid.UUID) -> User | None:
        return await session.get(User, user_id)

    async def email_exists(self, session: AsyncSession, email: str) -> bool:
        return (await session.execute(select(User.id).where(User.email == email))).first() is not None

    async def username_exists(self, session: AsyncSession, username: str) -> bool:
        return (await session.execute(select(User.id).where(User.username == username))).first() is not None

    async def usernames_starting_with(self, session: AsyncSession, prefix: str) -> set[str]:
        escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        rows = await session.execute(select(User.username).where(User.username.like(f"{escaped}%", escape="\\")))
        return set(rows.scalars())

    async def page(self, session: AsyncSession, params: PageParams) -> tuple[list[User], str | None]:
        rows, cursor = await fetch_page(session, select(User), self.keyset, params, lambda row: (row[0].id,))
        return [row[0] for row in rows], cursor

    async def count(self, session: AsyncSession) -> int:
        return int((await session.execute(select(func.count()).select_from(User))).scalar_one())

    async def personal_data(self, session: AsyncSession, user_id: uuid.UUID, now: datetime) -> dict[str, Any]:
        """Rows about one user for their data export: memberships, live sessions, keys, provider links, counts."""
        memberships = await session.execute(
            select(Membership.project_id, Project.name.label("project_name"), Membership.role, Membership.added_at)
            .join(Project, Project.id == Membership.project_id)
            .where(Membership.user_id == user_id)
            .order_by(Membership.added_at)
        )
        sessions = await session.execute(
            select(AuthSession)
            .where(AuthSession.user_id == user_id, AuthSession.expires_at > now)
            .order_by(AuthSession.id)
        )
        keys = await session.execute(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id))
        links = await session.execute(select(OAuthAccount).where(OAuthAccount.user_id == user_id))
        annotations = await session.execute(select(func.count()).where(Annotation.created_by == user_id))
        events = await session.execute(select(func.count()).where(AuditEvent.actor_user_id == user_id))
        return {
            "memberships": list(memberships.all()),
            "sessions": list(sessions.scalars()),
            "api_keys": list(keys.scalars()),
            "linked_providers": list(links.scalars()),
            "annotations_written": int(annotations.scalar_one()),
            "audit_events": int(events.scalar_one()),
        }

    async def projects_where_only_owner(self, session: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
        owners = (
            select(Membership.project_id, func.count().label("owners"))
            .where(Membership.role == Role.owner)
            .group_by(Membership.project_id)
            .subquery()
        )
        statement = (
            select(Membership.project_id)
            .join(owners, owners.c.project_id == Membership.project_id)
            .where(Membership.user_id == user_id, Membership.role == Role.owner, owners.c.owners == 1)
        )
        return list((await session.execute(statement)).scalars())


user_repository = UserRepository()
