from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from annotation_platform.audit.context import bind_anonymous_context
from annotation_platform.auth.account import AlreadyVerified, ResetTokenInvalid, VerifyTokenInvalid, account_service
from annotation_platform.auth.dependencies import CurrentPrincipal
from annotation_platform.auth.oidc import (
    BINDING_COOKIE,
    STATE_LIFETIME,
    OAuthEmailTaken,
    OAuthFailed,
    OAuthProviderUnavailable,
    OAuthProviderUnknown,
    oidc_service,
)
from annotation_platform.auth.schemas import (
    BearerToken,
    EmailRequest,
    OAuthAuthorization,
    PasswordReset,
    UserRegister,
    VerifyRequest,
)
from annotation_platform.auth.service import InvalidCredentials, LoginLocked, auth_service
from annotation_platform.config import Settings, SettingsDep
from annotation_platform.core.clients import client_ip
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import (
    BODY_ERRORS,
    NotAuthenticated,
    UnsupportedMediaType,
    ValidationFailed,
    problem_responses,
)
from annotation_platform.core.rate_limit import RateLimited, limit_auth_route, rate_limiter_of
from annotation_platform.core.routing import ApiRouter
from annotation_platform.user.schemas import UserRead
from annotation_platform.user.service import EmailTaken, InvalidPassword, UsernameTaken, user_service

router = ApiRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/register",
    operation_id="register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserRead,
    dependencies=[Depends(limit_auth_route), Depends(bind_anonymous_context)],
    responses=problem_responses(EmailTaken, UsernameTaken, InvalidPassword, RateLimited, *BODY_ERRORS),
)
async def register(body: UserRegister, session: SessionDep, settings: SettingsDep, response: Response) -> UserRead:
    """Create an account, then log in with `POST /auth/jwt/login`.

    The password must be long enough (`PASSWORD_MIN_LENGTH`, 10 by default), must not contain the email or
    username, and must not be a well-known password.
    """
    user = await user_service.register(
        session, settings, email=body.email, password=body.password, username=body.username
    )
    response.headers["Location"] = "/api/v1/users/me"
    return UserRead.model_validate(user)


@router.post(
    "/jwt/login",
    operation_id="login",
    response_model=BearerToken,
    dependencies=[Depends(limit_auth_route), Depends(bind_anonymous_context)],
    responses=problem_responses(InvalidCredentials, LoginLocked, ValidationFailed, UnsupportedMediaType, RateLimited),
)
async def login(
    request: Request,
    credentials: Annotated[OAuth2PasswordRequestForm, Depends()],
    session: SessionDep,
    settings: SettingsDep,
) -> BearerToken:
    """Exchange email (as form field `username`) and password for a bearer token.

    After LOGIN_LOCKOUT_ATTEMPTS wrong passwords for one email, that email's logins are refused (429
    `login_locked`) for LOGIN_LOCKOUT_SECONDS."""
    issued = await auth_service.login(
        session,
        settings,
        credentials=credentials,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
        limiter=rate_limiter_of(request),
    )
    return BearerToken(access_token=issued.token, expires_in=issued.lifetime_seconds)


@router.post(
    "/jwt/logout",
    operation_id="logout",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(NotAuthenticated),
)
async def logout(principal: CurrentPrincipal, session: SessionDep) -> Response:
    """End this login session: the token stops working at once."""
    await auth_service.logout(session, principal=principal)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/forgot-password",
    operation_id="forgotPassword",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,  # an empty 202: no JSON body to document
    dependencies=[Depends(limit_auth_route), Depends(bind_anonymous_context)],
    responses=problem_responses(RateLimited, *BODY_ERRORS),
)
async def forgot_password(body: EmailRequest, session: SessionDep, settings: SettingsDep) -> Response:
    """Mail a password reset token to this address, if an active account has it. The answer is 202 either
    way, so it does not tell which emails are registered."""
    await account_service.forgot_password(session, settings, email=body.email)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/reset-password",
    operation_id="resetPassword",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(limit_auth_route), Depends(bind_anonymous_context)],
    responses=problem_responses(ResetTokenInvalid, InvalidPassword, RateLimited, *BODY_ERRORS),
)
async def reset_password(body: PasswordReset, session: SessionDep, settings: SettingsDep) -> Response:
    """Set a new password with the mailed token (once). Every session of the account ends: log in again."""
    await account_service.reset_password(session, settings, token=body.token, password=body.password)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/request-verify-token",
    operation_id="requestVerifyToken",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,  # an empty 202: no JSON body to document
    dependencies=[Depends(limit_auth_route), Depends(bind_anonymous_context)],
    responses=problem_responses(RateLimited, *BODY_ERRORS),
)
async def request_verify_token(body: EmailRequest, session: SessionDep, settings: SettingsDep) -> Response:
    """Mail an email verification token to this address, if an active, unverified account has it (202 either
    way)."""
    await account_service.request_verify(session, settings, email=body.email)
    return Response(status_code=status.HTTP_202_ACCEPTED)


@router.post(
    "/verify",
    operation_id="verifyEmail",
    response_model=UserRead,
    dependencies=[Depends(bind_anonymous_context)],
    responses=problem_responses(VerifyTokenInvalid, AlreadyVerified, *BODY_ERRORS),
)
async def verify(body: VerifyRequest, session: SessionDep, settings: SettingsDep) -> UserRead:
    """Confirm the account's email with the mailed token: `is_verified` becomes true."""
    return UserRead.model_validate(await account_service.verify(session, settings, token=body.token))


ProviderPath = Annotated[str, Path(description="The provider's name (setting OIDC_PROVIDER_NAME).")]
OAUTH_COOKIE_PATH = "/api/v1/auth/oauth/"


def _callback_url(request: Request, settings: Settings, provider: str) -> str:
    base = (settings.public_base_url or str(request.base_url)).rstrip("/")
    return f"{base}/api/v1/auth/oauth/{provider}/callback"


@router.get(
    "/oauth/{provider}/authorize",
    operation_id="oauthAuthorize",
    response_model=OAuthAuthorization,
    dependencies=[Depends(limit_auth_route)],
    responses=problem_responses(OAuthProviderUnknown, OAuthProviderUnavailable, RateLimited),
)
async def oauth_authorize(
    provider: ProviderPath, request: Request, response: Response, settings: SettingsDep
) -> OAuthAuthorization:
    """The provider's login page to send the user to. The provider then redirects to the callback below with
    `code` and `state`. The answer sets a short-lived HttpOnly cookie that the callback needs: the login must
    finish in the browser (cookie jar) that started it; the PKCE challenge is in the URL."""
    authorization = await oidc_service.authorize(
        settings, provider=provider, redirect_uri=_callback_url(request, settings, provider)
    )
    response.set_cookie(
        BINDING_COOKIE,
        authorization.binding,
        max_age=int(STATE_LIFETIME.total_seconds()),
        path=OAUTH_COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return OAuthAuthorization(authorization_url=authorization.url)


@router.get(
    "/oauth/{provider}/callback",
    operation_id="oauthCallback",
    response_model=BearerToken,
    dependencies=[Depends(limit_auth_route), Depends(bind_anonymous_context)],
    responses=problem_responses(
        OAuthProviderUnknown, OAuthFailed, OAuthEmailTaken, OAuthProviderUnavailable, RateLimited, ValidationFailed
    ),
)
async def oauth_callback(
    provider: ProviderPath,
    code: Annotated[str, Query(min_length=1, max_length=2048)],
    state: Annotated[str, Query(min_length=1, max_length=4096)],
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
) -> BearerToken:
    """Finish a provider login: the same bearer token as `POST /auth/jwt/login` gives. A new provider user gets
    a new account; an email that already has a local account is refused (409) unless OIDC_ASSOCIATE_BY_EMAIL."""
    issued = await oidc_service.callback(
        session,
        settings,
        provider=provider,
        code=code,
        state=state,
        binding=request.cookies.get(BINDING_COOKIE),
        redirect_uri=_callback_url(request, settings, provider),
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    response.delete_cookie(BINDING_COOKIE, path=OAUTH_COOKIE_PATH)
    return BearerToken(access_token=issued.token, expires_in=issued.lifetime_seconds)
