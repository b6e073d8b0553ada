from __future__ import annotations

from typing import Annotated, Literal

from pydantic import EmailStr, Field, StringConstraints

from annotation_platform.core.schemas import InputModel, ReadModel

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


class BearerToken(ReadModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.")
