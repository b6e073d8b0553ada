from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import EmailStr, Field, StringConstraints

from annotation_platform.core.schemas import Id, InputModel, ReadModel
from annotation_platform.models import AuthSession

Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=3, max_length=64, pattern=r"^[a-zA-Z0-9_.-]+$"),
    Field(description="3 to 64 letters, digits, `_`, `.` or `-`; stored lower-case.", examples=["ana"]),
]
Password = Annotated[str, Field(min_length=1, max_length=256, examples=["correct horse battery staple"])]


class UserRegister(InputModel):
    email: EmailStr = Field(max_length=320, examples=["ana@example.org"])
    password: Password
    username: Username | None = Field(default=None, description="Derived from the email when omitted.")


class EmailRequest(InputModel):
    email: EmailStr = Field(max_length=320, examples=["ana@example.org"])


class PasswordReset(InputModel):
    token: str = Field(
        min_length=1,
        max_length=2048,
        description="The token from the reset mail.",
        examples=["eyJhbGciOiJIUzI1NiJ9.e30.sig"],
    )
    password: Password


class VerifyRequest(InputModel):
    token: str = Field(
        min_length=1,
        max_length=2048,
        description="The token from the verification mail.",
        examples=["eyJhbGciOiJIUzI1NiJ9.e30.sig"],
    )


class OAuthAuthorization(ReadModel):
    authorization_url: str = Field(description="Send the user's browser here to log in at the provider.")


class BearerToken(ReadModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.")


class SessionRead(ReadModel):
    """A login session: where and when it started, when it was last used, when it ends."""

    id: Id
    created_at: datetime
    last_seen_at: datetime = Field(description="Written at most once per SESSION_TOUCH_INTERVAL_SECONDS.")
    expires_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool = Field(description="Whether this is the session making the request.")

    @classmethod
    def of(cls, auth_session: AuthSession, current: uuid.UUID | None) -> SessionRead:
        return cls(
            id=auth_session.id,
            created_at=auth_session.created_at,
            last_seen_at=auth_session.last_seen_at,
            expires_at=auth_session.expires_at,
            ip=auth_session.ip,
            user_agent=auth_session.user_agent,
            current=auth_session.id == current,
        )
