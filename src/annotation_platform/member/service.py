"""Membership rules: managers manage roles below manager, owners manage everyone, a project keeps an owner."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.audit.service import audit_service
from annotation_platform.core.errors import Conflict, Forbidden, NotFound
from annotation_platform.core.pagination import PageParams
from annotation_platform.member.repository import member_repository
from annotation_platform.member.schemas import MemberRead
from annotation_platform.models import Membership, Role, User
from annotation_platform.project.permissions import Action, role_allows
from annotation_platform.project.service import ProjectAccess
from annotation_platform.user.repository import user_repository

PRIVILEGED_ROLES = frozenset({Role.manager, Role.owner})


class LastOwner(Conflict):
    code = "last_owner"
    title = "A project would lose its last owner"
    description = "Every project keeps at least one owner. Make someone else owner first."


def _to_read(row: Any) -> MemberRead:
    return MemberRead(user_id=row.user_id, username=row.username, role=Role(row.role), added_at=row.added_at)


class MemberService:
    async def page(
        self, session: AsyncSession, *, access: ProjectAccess, params: PageParams
    ) -> tuple[list[MemberRead], str | None, int | None]:
        project_id = access.project.id
        rows, cursor = await member_repository.page(session, project_id, params)
        total = await member_repository.count(session, project_id) if params.include_total else None
        return [_to_read(row) for row in rows], cursor, total

    async def get(self, session: AsyncSession, *, access: ProjectAccess, user_id: uuid.UUID) -> MemberRead:
        row = await member_repository.get_row(session, access.project.id, user_id)
        if row is None:
            raise NotFound("No such member.")
        return _to_read(row)

    async def put(
        self, session: AsyncSession, *, access: ProjectAccess, user_id: uuid.UUID, role: Role
    ) -> tuple[MemberRead, bool]:
        """Add the user with this role or change their role; True when the membership is new.

        Permission is checked before the user is looked up, so a member who may not manage members cannot
        learn which user ids exist.
        """
        membership = await member_repository.get(session, access.project.id, user_id)
        current = Role(membership.role) if membership else None
        self._check_may_assign(access, current=current, new=role)
        user = await user_repository.get(session, user_id)
        if user is None or not user.is_active:
            raise NotFound("No such user.")
        if membership is None:
            membership = Membership(project_id=access.project.id, user_id=user_id, role=role)
            await member_repository.add(session, membership)
            self._audit(session, "member.add", access, user_id, before=None, after={"role": role})
        elif current is not role:
            if current is Role.owner:
                await self._keep_an_owner(session, access.project.id, leaving=user_id)
            membership.role = role
            await session.flush()
            self._audit(session, "member.role_change", access, user_id, before={"role": current}, after={"role": role})
        return MemberRead(user_id=user.id, username=user.username, role=role, added_at=membership.added_at), (
            current is None
        )

    async def remove(self, session: AsyncSession, *, access: ProjectAccess, caller: User, user_id: uuid.UUID) -> None:
        membership = await member_repository.get(session, access.project.id, user_id)
        if membership is None:
            raise NotFound("No such member.")
        if user_id != caller.id:
            self._check_may_assign(access, current=Role(membership.role), new=None)
        if membership.role == Role.owner:
            await self._keep_an_owner(session, access.project.id, leaving=user_id)
        await member_repository.delete(session, membership)
        self._audit(session, "member.remove", access, user_id, before={"role": membership.role}, after=None)

    async def transfer_ownership(
        self, session: AsyncSession, *, access: ProjectAccess, caller: User, user_id: uuid.UUID
    ) -> MemberRead:
        """Make a member owner and step the calling owner down to manager, in one transaction.

        A superuser who is not an owner hands ownership over without stepping anyone down.
        """
        target = await member_repository.get(session, access.project.id, user_id)
        if target is None:
            raise NotFound("No such member.")
        self._audit(
            session, "member.role_change", access, user_id, before={"role": target.role}, after={"role": "owner"}
        )
        target.role = Role.owner
        if user_id != caller.id:
            mine = await member_repository.get(session, access.project.id, caller.id)
            if mine is not None and mine.role == Role.owner:
                mine.role = Role.manager
                self._audit(
                    session,
                    "member.role_change",
                    access,
                    caller.id,
                    before={"role": "owner"},
                    after={"role": "manager"},
                )
        await session.flush()
        row = await member_repository.get_row(session, access.project.id, user_id)
        return _to_read(row)

    def _audit(
        self,
        session: AsyncSession,
        action: str,
        access: ProjectAccess,
        user_id: uuid.UUID,
        *,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        audit_service.record(
            session,
            action=action,
            resource_type="member",
            resource_id=user_id,
            project_id=access.project.id,
            before=before,
            after=after,
        )

    def _check_may_assign(self, access: ProjectAccess, *, current: Role | None, new: Role | None) -> None:
        if not role_allows(access.role, Action.manage):
            raise Forbidden(f"Your role ({access.role.value}) may not manage members.")
        touches_privileged = current in PRIVILEGED_ROLES or new in PRIVILEGED_ROLES
        if touches_privileged and not role_allows(access.role, Action.own):
            raise Forbidden("Only owners may grant, change or remove the manager and owner roles.")

    async def _keep_an_owner(self, session: AsyncSession, project_id: uuid.UUID, *, leaving: uuid.UUID) -> None:
        owners = await member_repository.lock_owners(session, project_id)
        if not [owner for owner in owners if owner != leaving]:
            raise LastOwner()


member_service = MemberService()
