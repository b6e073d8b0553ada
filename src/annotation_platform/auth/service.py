"""Logging in and out: opaque bearer tokens backed by a server-side session row."""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

import orjson
from fastapi.security import OAuth2PasswordRequestForm
from limits import RateLimitItem, RateLimitItemPerSecond
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.audit.service import audit_service, email_hash
from annotation_platform.auth.manager import user_manager_for
from annotation_platform.auth.repository import auth_session_repository
from annotation_platform.auth.schemas import SessionRead
from annotation_platform.config import Settings
from annotation_platform.core.cache import AUTH, cache_of, decode_row, dumps, encode_row, lookup
from annotation_platform.core.errors import AppError, BadRequest, NotAuthenticated, NotFound
from annotation_platform.core.pagination import PageParams
from annotation_platform.core.rate_limit import RateLimiter
from annotation_platform.core.types import utcnow
from annotation_platform.models import AuthSession, User

security_logger = logging.getLogger("annotation_platform.security")

TOKEN_PREFIX = "apt_"  # noqa: S105 - marks our tokens for secret scanners  # nosec B105


class InvalidCredentials(BadRequest):
    code = "invalid_credentials"
    title = "Invalid credentials"
    description = "The email or password is wrong, or the account is disabled. Check them and retry."


class LoginLocked(AppError):
    status = 429
    code = "login_locked"
    title = "Login locked"
    description = "Too many wrong passwords for this email: logins are refused for a while. Wait `Retry-After` seconds."


def lockout_limit(settings: Settings) -> RateLimitItem:
    return RateLimitItemPerSecond(settings.login_lockout_attempts, settings.login_lockout_seconds)


def lockout_key(email: str) -> str:
    """The failure counter's key: a hash, so that emails never sit in Redis in clear (the trail's, too)."""
    return email_hash(email)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, and through which credential: a login session or an API key (exactly one is set)."""

    user: User
    session_id: uuid.UUID | None
    api_key_id: uuid.UUID | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    lifetime_seconds: int


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def session_cache_key(token_hash: str) -> str:
    """The cache key of a bearer token's caller (its scope: `auth`)."""
    return f"auth:{token_hash}"


class AuthService:
    async def login(
        self,
        session: AsyncSession,
        settings: Settings,
        *,
        credentials: OAuth2PasswordRequestForm,
        ip: str | None,
        user_agent: str | None,
        limiter: RateLimiter,
    ) -> IssuedToken:
        """A new session for the right email and password. Wrong passwords count against the email (whether or
        not an account has it, so the lockout tells nothing); at the limit its logins are refused for a while."""
        lockout = lockout_limit(settings) if settings.login_lockout_attempts else None
        key = lockout_key(credentials.username)
        if lockout is not None:
            may_try, retry_after = await limiter.failures(lockout, "login-failures", key)
            if not may_try:
                raise LoginLocked(
                    f"Logins for this email are locked; retry in {retry_after} s.",
                    headers={"Retry-After": str(retry_after)},
                )
        manager = user_manager_for(session, settings)
        user = await manager.authenticate(credentials)
        if user is None or not user.is_active:
            known = user or await manager.user_db.get_by_email(credentials.username)
            locked = lockout is not None and not await limiter.fail(lockout, "login-failures", key)
            await audit_service.record_now(
                session,
                action="auth.login_locked" if locked else "auth.login_failed",
                resource_type="user",
                resource_id=known.id if known else None,
                after={"email_hash": key},
            )
            if locked:
                security_logger.warning(
                    "login locked after %d failures (email hash %s)", settings.login_lockout_attempts, key[:12]
                )
            raise InvalidCredentials()
        if lockout is not None:
            await limiter.clear(lockout, "login-failures", key)
        return await self.start_session(session, settings, user=user, ip=ip, user_agent=user_agent)

    async def start_session(
        self,
        session: AsyncSession,
        settings: Settings,
        *,
        user: User,
        ip: str | None,
        user_agent: str | None,
        via: str | None = None,
    ) -> IssuedToken:
        """A new login session for a user whose identity was checked (password, or an OpenID provider)."""
        now = utcnow()
        await auth_session_repository.delete_expired(session, user_id=user.id, now=now)
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        await auth_session_repository.add(
            session,
            AuthSession(
                user_id=user.id,
                token_hash=hash_token(token),
                created_at=now,
                last_seen_at=now,
                expires_at=now + timedelta(seconds=settings.access_token_lifetime_seconds),
                ip=ip,
                user_agent=(user_agent or "")[:512] or None,
            ),
        )
        audit_service.record(
            session,
            action="auth.login",
            resource_type="user",
            resource_id=user.id,
            actor_user_id=user.id,
            after={"via": via} if via else None,
        )
        return IssuedToken(token=token, lifetime_seconds=settings.access_token_lifetime_seconds)

    async def authenticate(
        self, session: AsyncSession, settings: Settings, *, token: str | None, cacheable: bool = False
    ) -> Principal:
        """The caller of a bearer token. `cacheable` (reads only): the look-up may come from the cache, whose
        entry lives no longer than the session's next touch, and any write to users or sessions retires it."""
        if not token:
            raise NotAuthenticated(
                "Send `Authorization: Bearer <token>` from POST /api/v1/auth/jwt/login, or `X-API-Key: <key>`."
            )
        now = utcnow()
        token_hash = hash_token(token)
        cache = cache_of(session) if cacheable else None
        generations: list[int] = []
        if cache is not None:
            cached, generations = await lookup(session, cache, session_cache_key(token_hash), (AUTH,))
            if cached is not None:
                entry = orjson.loads(cached)
                if entry["touch_by"] > now.timestamp():
                    user = decode_row(User, entry["user"])
                    return Principal(user=user, session_id=uuid.UUID(entry["session_id"]))
        found = await auth_session_repository.get_live_with_user(session, token_hash=token_hash, now=now)
        if found is None:
            raise NotAuthenticated("The token is invalid, expired or revoked. Log in again.")
        auth_session, user = found
        if not user.is_active:
            raise NotAuthenticated("The account is disabled.")
        last_seen = auth_session.last_seen_at
        if (now - last_seen).total_seconds() >= settings.session_touch_interval_seconds:
            await auth_session_repository.touch(session, session_id=auth_session.id, now=now)
            last_seen = now
        if cache is not None:
            touch_by = min(
                last_seen.timestamp() + settings.session_touch_interval_seconds, auth_session.expires_at.timestamp()
            )
            user_row = {**encode_row(user), "hashed_password": ""}  # the hash never leaves the database  # nosec B105
            entry = {"session_id": auth_session.id, "touch_by": touch_by, "user": user_row}
            await cache.store(session_cache_key(token_hash), generations, dumps(entry))
        return Principal(user=user, session_id=auth_session.id)

    async def sessions(
        self, session: AsyncSession, *, principal: Principal, params: PageParams
    ) -> tuple[list[SessionRead], str | None, int | None]:
        user_id, now = principal.user.id, utcnow()
        rows, cursor = await auth_session_repository.page_live(session, user_id=user_id, now=now, params=params)
        total = (
            await auth_session_repository.count_live(session, user_id=user_id, now=now)
            if params.include_total
            else None
        )
        return [SessionRead.of(row, principal.session_id) for row in rows], cursor, total

    async def revoke(self, session: AsyncSession, *, principal: Principal, session_id: uuid.UUID) -> None:
        """End one of the caller's own sessions (the current one too); others' do not exist for them."""
        found = await auth_session_repository.get_live_own(
            session, user_id=principal.user.id, session_id=session_id, now=utcnow()
        )
        if found is None:
            raise NotFound("No such session.")
        await auth_session_repository.delete(session, session_id=found.id)
        audit_service.record(session, action="session.revoke", resource_type="session", resource_id=found.id)

    async def logout(self, session: AsyncSession, *, principal: Principal) -> None:
        if principal.session_id is None:
            raise BadRequest("Logout ends a login session; revoke an API key with DELETE /api/v1/api-keys/{key_id}.")
        await auth_session_repository.delete(session, session_id=principal.session_id)
        audit_service.record(session, action="auth.logout", resource_type="session", resource_id=principal.session_id)


auth_service = AuthService()
