"""fastapi-users' user manager, bound to our session: it flushes, the request commits."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request
from fastapi_users import BaseUserManager, UUIDIDMixin
from fastapi_users.exceptions import InvalidPasswordException
from fastapi_users.password import PasswordHelper
from fastapi_users_db_sqlalchemy import SQLAlchemyUserDatabase
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.auth.passwords import password_problems
from annotation_platform.config import Environment, Settings
from annotation_platform.mail.service import enqueue_mail
from annotation_platform.models import User


# fastapi-users' protocol declares plain attributes where the model has `Mapped[...]` ones: same at runtime.
class UserDatabase(SQLAlchemyUserDatabase[User, uuid.UUID]):  # type: ignore[type-var]
    """The fastapi-users adapter, changed to flush instead of commit and to use the lower-case email index."""

    async def get_by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(User.email == email.lower()))
        return result.scalar_one_or_none()

    async def create(self, create_dict: dict[str, Any]) -> User:
        user = User(**create_dict)
        self.session.add(user)
        await self.session.flush()
        return user

    async def update(self, user: User, update_dict: dict[str, Any]) -> User:
        for key, value in update_dict.items():
            setattr(user, key, value)
        await self.session.flush()
        return user

    async def delete(self, user: User) -> None:
        await self.session.delete(user)
        await self.session.flush()


_PASSWORD_HELPERS = {
    # Argon2id with the library's defaults (64 MiB, 3 passes); bcrypt only verifies hashes imported from elsewhere.
    "default": PasswordHelper(PasswordHash((Argon2Hasher(), BcryptHasher()))),
    # The test suite registers hundreds of accounts: the same algorithm at its cheapest, never outside tests.
    "test": PasswordHelper(PasswordHash((Argon2Hasher(time_cost=1, memory_cost=8 * 1024, parallelism=1),))),
}


def password_helper_for(settings: Settings) -> PasswordHelper:
    return _PASSWORD_HELPERS["test" if settings.environment is Environment.test else "default"]


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):  # type: ignore[type-var]
    def __init__(self, user_db: UserDatabase, settings: Settings) -> None:
        super().__init__(user_db, password_helper_for(settings))
        self.session = user_db.session
        self.settings = settings
        secret = settings.resolved_secret_key()
        self.reset_password_token_secret = secret
        self.verification_token_secret = secret
        self.reset_password_token_lifetime_seconds = settings.password_reset_token_lifetime_seconds
        self.verification_token_lifetime_seconds = settings.verification_token_lifetime_seconds

    async def on_after_forgot_password(self, user: User, token: str, request: Request | None = None) -> None:
        minutes = self.reset_password_token_lifetime_seconds // 60
        enqueue_mail(
            self.session,
            to=user.email,
            subject="Reset your annotation-platform password",
            body=(
                "Someone (hopefully you) asked to reset the password of your annotation-platform account.\n\n"
                "To choose a new password, send POST /api/v1/auth/reset-password with\n"
                '{"token": "<the token below>", "password": "<your new password>"}\n\n'
                f"{token}\n\n"
                f"The token works once, for {minutes} minutes. If you did not ask for this, ignore this mail:\n"
                "your password stays as it is.\n"
            ),
        )

    async def on_after_request_verify(self, user: User, token: str, request: Request | None = None) -> None:
        hours = self.verification_token_lifetime_seconds // 3600
        enqueue_mail(
            self.session,
            to=user.email,
            subject="Confirm your email address for annotation-platform",
            body=(
                "To confirm that this address is yours, send POST /api/v1/auth/verify with\n"
                '{"token": "<the token below>"}\n\n'
                f"{token}\n\n"
                f"The token is valid for {hours} hours. If you did not ask for this, ignore this mail.\n"
            ),
        )

    async def validate_password(self, password: str, user: Any) -> None:
        problems = password_problems(
            password,
            email=getattr(user, "email", ""),
            username=getattr(user, "username", None),
            min_length=self.settings.password_min_length,
        )
        if problems:
            raise InvalidPasswordException(reason=" ".join(problems))


def user_manager_for(session: AsyncSession, settings: Settings) -> UserManager:
    return UserManager(UserDatabase(session, User), settings)
