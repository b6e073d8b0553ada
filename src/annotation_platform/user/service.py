"""Account rules: registration, profile changes, administration."""

from __future__ import annotations

import re
import uuid
from typing import Any

from fastapi_users.exceptions import InvalidPasswordException
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.api_key.schemas import ApiKeyRead
from annotation_platform.audit.service import audit_service, changed_fields, email_hash
from annotation_platform.auth.manager import password_helper_for, user_manager_for
from annotation_platform.auth.repository import auth_session_repository
from annotation_platform.auth.schemas import SessionRead
from annotation_platform.config import Settings
from annotation_platform.core.errors import Conflict, NotFound, ValidationFailed
from annotation_platform.core.pagination import PageParams
from annotation_platform.core.types import utcnow
from annotation_platform.member.service import LastOwner
from annotation_platform.models import User
from annotation_platform.user.repository import user_repository
from annotation_platform.user.schemas import (
    LinkedProviderExport,
    MembershipExport,
    PersonalDataExport,
    UserAdminUpdate,
    UserRead,
    UserUpdateMe,
)


class EmailTaken(Conflict):
    code = "email_taken"
    title = "Email already registered"
    description = "An account with this email exists. Log in, or reset its password."


class UsernameTaken(Conflict):
    code = "username_taken"
    title = "Username taken"
    description = "Another account has this username. Choose another."


class InvalidPassword(ValidationFailed):
    code = "invalid_password"
    title = "Password rejected"
    description = "The password does not meet the policy (length, not your email, not a common password)."


class WrongCurrentPassword(ValidationFailed):
    code = "current_password_required"
    title = "Current password required"
    description = "Changing the email or password needs `current_password`, and it must be right."


def _username_base(email: str) -> str:
    base = re.sub(r"[^a-z0-9_.-]+", "-", email.split("@", 1)[0].lower()).strip("-.") or "user"
    return (base if len(base) >= 3 else f"{base}-user")[:56]


class UserService:
    async def register(
        self,
        session: AsyncSession,
        settings: Settings,
        *,
        email: str,
        password: str,
        username: str | None = None,
        is_superuser: bool = False,
        is_verified: bool = False,
    ) -> User:
        email = email.lower()
        if await user_repository.email_exists(session, email):
            raise EmailTaken()
        if username is None:
            username = await self._free_username(session, _username_base(email))
        elif await user_repository.username_exists(session, username):
            raise UsernameTaken()
        manager = user_manager_for(session, settings)
        await self._check_password(manager, password, email=email, username=username)
        user = await manager.user_db.create(
            {
                "email": email,
                "username": username,
                "hashed_password": manager.password_helper.hash(password),
                "is_superuser": is_superuser,
                "is_verified": is_verified,
                "is_active": True,
            }
        )
        audit_service.record(
            session,
            action="user.register",
            resource_type="user",
            resource_id=user.id,
            actor_user_id=user.id,
            after={"username": username, "is_superuser": is_superuser},
        )
        return user

    async def update_me(
        self,
        session: AsyncSession,
        settings: Settings,
        *,
        user: User,
        data: UserUpdateMe,
        current_session: uuid.UUID | None,
    ) -> User:
        """Apply the caller's own changes; a new password ends every other session of theirs."""
        changes = data.model_dump(exclude_unset=True, exclude={"current_password"})
        if ("email" in changes or "password" in changes) and not self._password_matches(
            settings, user, data.current_password
        ):
            raise WrongCurrentPassword(
                errors=[
                    {
                        "loc": ["body", "current_password"],
                        "msg": "Wrong or missing password",
                        "type": "value_error",
                    }
                ]
            )
        new_password = "password" in changes
        before = UserRead.model_validate(user)
        updated = await self._apply(session, settings, user=user, changes=changes)
        self._audit_update(session, "user.update", before, updated, new_password)
        if new_password:
            await auth_session_repository.delete_all_but(session, user_id=user.id, keep=current_session)
        return updated

    async def admin_update(
        self, session: AsyncSession, settings: Settings, *, user_id: uuid.UUID, data: UserAdminUpdate
    ) -> User:
        """An administrator's changes; a password set this way ends all of the user's sessions."""
        user = await self.get(session, user_id)
        changes = data.model_dump(exclude_unset=True)
        new_password = "password" in changes
        before = UserRead.model_validate(user)
        updated = await self._apply(session, settings, user=user, changes=changes)
        self._audit_update(session, "user.admin_update", before, updated, new_password)
        if new_password:
            await auth_session_repository.delete_all_but(session, user_id=user.id, keep=None)
        return updated

    async def export(
        self, session: AsyncSession, *, user: User, current_session: uuid.UUID | None
    ) -> PersonalDataExport:
        """The caller's personal data, in one document (GDPR-style access)."""
        rows = await user_repository.personal_data(session, user.id, utcnow())
        return PersonalDataExport(
            user=UserRead.model_validate(user),
            memberships=[MembershipExport.model_validate(row, from_attributes=True) for row in rows["memberships"]],
            sessions=[SessionRead.of(row, current_session) for row in rows["sessions"]],
            api_keys=[ApiKeyRead.model_validate(row) for row in rows["api_keys"]],
            linked_providers=[LinkedProviderExport.model_validate(row) for row in rows["linked_providers"]],
            annotations_written=rows["annotations_written"],
            audit_events=rows["audit_events"],
        )

    async def get(self, session: AsyncSession, user_id: uuid.UUID) -> User:
        user = await user_repository.get(session, user_id)
        if user is None:
            raise NotFound("No such user.")
        return user

    async def page(self, session: AsyncSession, params: PageParams) -> tuple[list[User], str | None, int | None]:
        users, cursor = await user_repository.page(session, params)
        total = await user_repository.count(session) if params.include_total else None
        return users, cursor, total

    async def delete(self, session: AsyncSession, *, user_id: uuid.UUID) -> None:
        user = await self.get(session, user_id)
        if await user_repository.projects_where_only_owner(session, user.id):
            raise LastOwner("This user is the only owner of a project. Give the project another owner first.")
        audit_service.record(
            session, action="user.delete", resource_type="user", resource_id=user.id, before={"username": user.username}
        )
        await session.delete(user)
        await session.flush()

    def _audit_update(
        self, session: AsyncSession, action: str, before: UserRead, user: User, new_password: bool
    ) -> None:
        """The changed fields; a new password is noted as changed, never with any value; emails as hashes."""
        old, new = changed_fields(before, UserRead.model_validate(user))
        for side in (old, new):
            if "email" in side:
                side["email_hash"] = email_hash(side.pop("email"))
        if new_password:
            new["password_changed"] = True
        audit_service.record(session, action=action, resource_type="user", resource_id=user.id, before=old, after=new)

    async def _apply(self, session: AsyncSession, settings: Settings, *, user: User, changes: dict[str, Any]) -> User:
        if "email" in changes:
            changes["email"] = changes["email"].lower()
            if changes["email"] != user.email:
                if await user_repository.email_exists(session, changes["email"]):
                    raise EmailTaken()
                changes.setdefault("is_verified", False)
        if changes.get("username") not in (None, user.username) and await user_repository.username_exists(
            session, changes["username"]
        ):
            raise UsernameTaken()
        if "password" in changes:
            manager = user_manager_for(session, settings)
            password = changes.pop("password")
            await self._check_password(
                manager,
                password,
                email=changes.get("email", user.email),
                username=changes.get("username", user.username),
            )
            changes["hashed_password"] = manager.password_helper.hash(password)
        for key, value in changes.items():
            setattr(user, key, value)
        await session.flush()
        return user

    async def _check_password(self, manager: Any, password: str, *, email: str, username: str) -> None:
        try:
            await manager.validate_password(password, User(email=email, username=username))
        except InvalidPasswordException as exc:
            reason = str(exc.reason)
            raise InvalidPassword(
                reason, errors=[{"loc": ["body", "password"], "msg": reason, "type": "password_policy"}]
            ) from exc

    def _password_matches(self, settings: Settings, user: User, password: str | None) -> bool:
        if not password:
            return False
        verified, _ = password_helper_for(settings).verify_and_update(password, user.hashed_password)
        return verified

    async def _free_username(self, session: AsyncSession, base: str) -> str:
        taken = await user_repository.usernames_starting_with(session, base)
        if base not in taken:
            return base
        suffix = 2
        while f"{base}-{suffix}" in taken:
            suffix += 1
        return f"{base}-{suffix}"


user_service = UserService()
