"""Login through a generic OpenID Connect provider (authorization code flow).

`authorize` hands out the provider's login URL with a signed, short-lived `state` and sets a binding cookie in
the browser that asked; `callback` checks the state against that cookie (a login started elsewhere, e.g. a
link an attacker sent, is refused), exchanges the code for an access token at the provider with the PKCE
verifier derived from the cookie, reads the user's `sub` and email from its userinfo endpoint, finds or creates
the account, and starts one of our login sessions. Provider tokens are used once and never stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.audit.service import audit_service
from annotation_platform.auth.service import IssuedToken, auth_service
from annotation_platform.config import Settings
from annotation_platform.core.errors import AppError, BadRequest, Conflict, NotFound
from annotation_platform.core.types import utcnow
from annotation_platform.models import OAuthAccount, User
from annotation_platform.user.repository import user_repository
from annotation_platform.user.service import user_service

STATE_AUDIENCE = "annotation-platform:oidc-state"
STATE_LIFETIME = timedelta(minutes=10)
BINDING_COOKIE = "annotation_platform_oidc"
"""Holds the random value the state is bound to; HttpOnly, SameSite=Lax (sent on the provider's redirect back)."""
PROVIDER_TIMEOUT_SECONDS = 10.0


class OAuthProviderUnknown(NotFound):
    code = "oauth_provider_unknown"
    title = "No such login provider"
    description = "This OpenID Connect provider is not configured here (OIDC_ISSUER, OIDC_PROVIDER_NAME)."


class OAuthFailed(BadRequest):
    code = "oauth_failed"
    title = "Provider login failed"
    description = "The state was wrong or expired, or the provider refused the code. Start again at /authorize."


class OAuthEmailTaken(Conflict):
    code = "oauth_email_taken"
    title = "Email belongs to a local account"
    description = "An account with this email exists and is not linked to the provider. Log in with its password."


class OAuthProviderUnavailable(AppError):
    status = 503
    code = "oauth_provider_unavailable"
    title = "Login provider unreachable"
    description = "The OpenID Connect provider did not answer. Retry later."


@dataclass(frozen=True)
class Authorization:
    url: str
    binding: str
    """The binding cookie's value."""


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _code_verifier(settings: Settings, binding: str) -> str:
    """The PKCE verifier: derived from the browser's binding cookie and our secret, so it is never sent anywhere
    but to the provider's token endpoint, and nothing has to be stored between the two requests."""
    mac = hmac.new(settings.resolved_secret_key().encode(), f"oidc-pkce:{binding}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def _code_challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _configured(settings: Settings, provider: str) -> None:
    if not settings.oidc_issuer or not settings.oidc_client_id or provider != settings.oidc_provider_name:
        raise OAuthProviderUnknown(f"No login provider named {provider!r}.")


class OidcService:
    def __init__(self) -> None:
        self._discovery: dict[str, dict[str, Any]] = {}

    async def _endpoints(self, settings: Settings) -> dict[str, Any]:
        """The provider's discovery document, fetched once per issuer."""
        issuer = (settings.oidc_issuer or "").rstrip("/")
        if issuer not in self._discovery:
            document = await self._call("GET", f"{issuer}/.well-known/openid-configuration")
            missing = {"authorization_endpoint", "token_endpoint", "userinfo_endpoint"} - set(document)
            if missing:
                raise OAuthProviderUnavailable(f"The provider's discovery document lacks {sorted(missing)}.")
            self._discovery[issuer] = document
        return self._discovery[issuer]

    async def _call(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(timeout=PROVIDER_TIMEOUT_SECONDS) as client:
                response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise OAuthProviderUnavailable() from exc
        if response.status_code >= 500:
            raise OAuthProviderUnavailable(f"The provider answered {response.status_code}.")
        if response.status_code >= 400:
            raise OAuthFailed(f"The provider refused the request ({response.status_code}).")
        try:
            body = response.json()
        except ValueError as exc:
            raise OAuthProviderUnavailable("The provider's answer is not JSON.") from exc
        if not isinstance(body, dict):
            raise OAuthProviderUnavailable("The provider's answer is not a JSON object.")
        return body

    async def authorize(self, settings: Settings, *, provider: str, redirect_uri: str) -> Authorization:
        _configured(settings, provider)
        endpoints = await self._endpoints(settings)
        binding = secrets.token_urlsafe(32)
        state = jwt.encode(
            {"aud": STATE_AUDIENCE, "exp": utcnow() + STATE_LIFETIME, "binding": _digest(binding)},
            settings.resolved_secret_key(),
            algorithm="HS256",
        )
        query = urlencode(
            {
                "response_type": "code",
                "client_id": settings.oidc_client_id,
                "redirect_uri": redirect_uri,
                "scope": settings.oidc_scopes,
                "state": state,
                "code_challenge": _code_challenge(_code_verifier(settings, binding)),
                "code_challenge_method": "S256",
            }
        )
        return Authorization(url=f"{endpoints['authorization_endpoint']}?{query}", binding=binding)

    async def callback(
        self,
        session: AsyncSession,
        settings: Settings,
        *,
        provider: str,
        code: str,
        state: str,
        binding: str | None,
        redirect_uri: str,
        ip: str | None,
        user_agent: str | None,
    ) -> IssuedToken:
        _configured(settings, provider)
        try:
            claims = jwt.decode(state, settings.resolved_secret_key(), algorithms=["HS256"], audience=STATE_AUDIENCE)
        except jwt.PyJWTError as exc:
            raise OAuthFailed("The state is invalid or expired. Start again at /authorize.") from exc
        if not binding or not hmac.compare_digest(str(claims.get("binding", "")), _digest(binding)):
            raise OAuthFailed(
                "This login was not started in this browser (its cookie is missing or belongs to another login). "
                "Start again at /authorize."
            )
        endpoints = await self._endpoints(settings)
        tokens = await self._call(
            "POST",
            endpoints["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "client_id": settings.oidc_client_id,
                "client_secret": settings.oidc_client_secret or "",
                "code_verifier": _code_verifier(settings, binding),
            },
            headers={"Accept": "application/json"},
        )
        access_token = tokens.get("access_token")
        if not isinstance(access_token, str):
            raise OAuthFailed("The provider gave no access token.")
        userinfo = await self._call(
            "GET", endpoints["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}
        )
        subject, email = userinfo.get("sub"), userinfo.get("email")
        if not isinstance(subject, str) or not subject or not isinstance(email, str) or "@" not in email:
            raise OAuthFailed("The provider did not tell us the user's id (`sub`) and email.")
        user = await self._account(
            session,
            settings,
            provider=provider,
            subject=subject,
            email=email,
            verified=userinfo.get("email_verified") is True,
        )
        if not user.is_active:
            raise OAuthFailed("The account is disabled.")
        return await auth_service.start_session(
            session, settings, user=user, ip=ip, user_agent=user_agent, via=provider
        )

    async def _account(
        self, session: AsyncSession, settings: Settings, *, provider: str, subject: str, email: str, verified: bool
    ) -> User:
        """The linked account; else the account with this email (only if allowed and the email is verified);
        else a new account, with an unusable random password."""
        linked = (
            await session.execute(
                select(User)
                .join(OAuthAccount, OAuthAccount.user_id == User.id)
                .where(OAuthAccount.provider == provider, OAuthAccount.subject == subject)
            )
        ).scalar_one_or_none()
        if linked is not None:
            return linked
        email = email.lower()
        user: User | None = None
        if await user_repository.email_exists(session, email):
            if not (settings.oidc_associate_by_email and verified):
                raise OAuthEmailTaken()
            user = (await session.execute(select(User).where(User.email == email))).scalar_one()
        else:
            user = await user_service.register(
                session, settings, email=email, password=secrets.token_urlsafe(32), is_verified=verified
            )
        session.add(OAuthAccount(user_id=user.id, provider=provider, subject=subject, email=email))
        await session.flush()
        audit_service.record(
            session,
            action="user.oauth_link",
            resource_type="user",
            resource_id=user.id,
            actor_user_id=user.id,
            after={"provider": provider},
        )
        return user


oidc_service = OidcService()
