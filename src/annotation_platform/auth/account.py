"""Account flows by emailed token: password reset and email verification.

Asking never reveals whether an account has the email (the answer is the same 202 either way); the token is
mailed by the worker after the request commits. A reset ends every session of the account.
"""

from __future__ import annotations

from fastapi_users import exceptions
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.audit.service import audit_service
from annotation_platform.auth.manager import user_manager_for
from annotation_platform.auth.repository import auth_session_repository
from annotation_platform.config import Settings
from annotation_platform.core.errors import BadRequest, Conflict
from annotation_platform.models import User
from annotation_platform.user.service import InvalidPassword


class ResetTokenInvalid(BadRequest):
    code = "reset_token_invalid"
    title = "Invalid or expired reset token"
    description = "The token is wrong, expired, already used, or the account is disabled. Ask for a new one."


class VerifyTokenInvalid(BadRequest):
    code = "verify_token_invalid"
    title = "Invalid or expired verification token"
    description = "The token is wrong or expired, or the email changed since. Ask for a new one."


class AlreadyVerified(Conflict):
    code = "already_verified"
    title = "Email already verified"
    description = "This account's email is already verified; there is nothing to do."


class AccountService:
    async def forgot_password(self, session: AsyncSession, settings: Settings, *, email: str) -> None:
        manager = user_manager_for(session, settings)
        user = await manager.user_db.get_by_email(email)
        if user is None or not user.is_active:
            return
        await manager.forgot_password(user)
        audit_service.record(session, action="auth.password_reset_requested", resource_type="user", resource_id=user.id)

    async def reset_password(self, session: AsyncSession, settings: Settings, *, token: str, password: str) -> User:
        manager = user_manager_for(session, settings)
        try:
            user = await manager.reset_password(token, password)
        except (exceptions.InvalidResetPasswordToken, exceptions.UserInactive, exceptions.UserNotExists) as exc:
            raise ResetTokenInvalid() from exc
        except exceptions.InvalidPasswordException as exc:
            reason = str(exc.reason)
            raise InvalidPassword(
                reason, errors=[{"loc": ["body", "password"], "msg": reason, "type": "password_policy"}]
            ) from exc
        await auth_session_repository.delete_all_but(session, user_id=user.id, keep=None)
        audit_service.record(
            session,
            action="auth.password_reset",
            resource_type="user",
            resource_id=user.id,
            actor_user_id=user.id,
            after={"password_changed": True},  # a flag saying it changed, no password  # nosec B105
        )
        return user

    async def request_verify(self, session: AsyncSession, settings: Settings, *, email: str) -> None:
        manager = user_manager_for(session, settings)
        user = await manager.user_db.get_by_email(email)
        if user is None or not user.is_active or user.is_verified:
            return
        await manager.request_verify(user)

    async def verify(self, session: AsyncSession, settings: Settings, *, token: str) -> User:
        manager = user_manager_for(session, settings)
        try:
            user = await manager.verify(token)
        except exceptions.InvalidVerifyToken as exc:
            raise VerifyTokenInvalid() from exc
        except exceptions.UserAlreadyVerified as exc:
            raise AlreadyVerified() from exc
        audit_service.record(
            session,
            action="user.verify",
            resource_type="user",
            resource_id=user.id,
            actor_user_id=user.id,
            after={"is_verified": True},
        )
        return user


account_service = AccountService()
