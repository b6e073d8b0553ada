"""API key rules: the secret is shown once and stored as a hash; a key acts as its user, never beyond them,
and further capped by its scopes, expiry and allowed IP ranges."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from ipaddress import ip_network

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.api_key.repository import api_key_repository
from annotation_platform.api_key.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead, Scope
from annotation_platform.audit.service import audit_service
from annotation_platform.auth.service import Principal, hash_token
from annotation_platform.config import Settings
from annotation_platform.core.cache import AUTH, cache_of, decode_row, dumps, encode_row, lookup
from annotation_platform.core.clients import IpNotAllowed, in_networks
from annotation_platform.core.errors import Forbidden, NotAuthenticated, NotFound, ValidationFailed
from annotation_platform.core.ids import uuid7
from annotation_platform.core.pagination import PageParams
from annotation_platform.core.types import utcnow
from annotation_platform.models import ApiKey, User

KEY_PREFIX = "apk_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ScopeNotHeld(ValidationFailed):
    code = "scope_not_held"
    title = "Scope beyond your own rights"
    description = "A key never grants more than its user has: only superusers may create keys with `admin`."


class ExpiryInThePast(ValidationFailed):
    code = "expiry_in_the_past"
    title = "Expiry in the past"
    description = "`expires_at` must be in the future. Omit it for a key that does not expire."


class InsufficientScope(Forbidden):
    code = "insufficient_scope"
    title = "The API key's scopes do not allow this"
    description = "Changes need a key with the `write` scope, administration one with `admin`. Use another key."


class LoginSessionRequired(Forbidden):
    code = "login_session_required"
    title = "Needs a login session"
    description = "This is done with a bearer token from login, not with an API key. Log in and retry."


def api_key_cache_key(secret_hash: str) -> str:
    """The cache key of an API key's caller (its scope: `auth`)."""
    return f"apikey:{secret_hash}"


def _to_read(api_key: ApiKey) -> ApiKeyRead:
    return ApiKeyRead.model_validate(api_key)


class ApiKeyService:
    async def create(self, session: AsyncSession, *, principal: Principal, data: ApiKeyCreate) -> ApiKeyCreated:
        if principal.api_key_id is not None:
            raise LoginSessionRequired("API keys cannot create API keys: log in to create one.")
        scopes = sorted(set(data.scopes), key=list(Scope).index)
        if Scope.admin in scopes and not principal.user.is_superuser:
            raise ScopeNotHeld(
                "Only superusers may create keys with the admin scope.",
                errors=[{"loc": ["body", "scopes"], "msg": "admin needs a superuser", "type": ScopeNotHeld.code}],
            )
        if data.expires_at is not None and data.expires_at <= utcnow():
            raise ExpiryInThePast(
                errors=[{"loc": ["body", "expires_at"], "msg": "in the past", "type": ExpiryInThePast.code}]
            )
        prefix = KEY_PREFIX + secrets.token_hex(4)
        secret = f"{prefix}_{secrets.token_urlsafe(32)}"
        api_key = ApiKey(
            id=uuid7(),
            user_id=principal.user.id,
            name=data.name,
            prefix=prefix,
            secret_hash=hash_token(secret),
            scopes=[scope.value for scope in scopes],
            allowed_ips=list(dict.fromkeys(data.allowed_ips)) if data.allowed_ips is not None else None,
            expires_at=data.expires_at,
            created_at=utcnow(),
        )
        await api_key_repository.add(session, api_key)
        read = _to_read(api_key)
        audit_service.record(
            session,
            action="api_key.create",
            resource_type="api_key",
            resource_id=api_key.id,
            after=read.model_dump(include={"name", "prefix", "scopes", "expires_at", "allowed_ips"}),
        )
        return ApiKeyCreated(**read.model_dump(), key=secret)

    async def page(
        self, session: AsyncSession, *, user: User, params: PageParams
    ) -> tuple[list[ApiKeyRead], str | None, int | None]:
        keys, cursor = await api_key_repository.page(session, user.id, params)
        total = await api_key_repository.count(session, user.id) if params.include_total else None
        return [_to_read(key) for key in keys], cursor, total

    async def get(self, session: AsyncSession, *, user: User, key_id: uuid.UUID) -> ApiKey:
        """One of the caller's keys; other people's keys do not exist for them (404), superusers included."""
        api_key = await api_key_repository.get_own(session, user.id, key_id)
        if api_key is None:
            raise NotFound("No such API key.")
        return api_key

    async def revoke(self, session: AsyncSession, *, user: User, key_id: uuid.UUID) -> None:
        api_key = await self.get(session, user=user, key_id=key_id)
        audit_service.record(
            session,
            action="api_key.revoke",
            resource_type="api_key",
            resource_id=api_key.id,
            before={"name": api_key.name, "prefix": api_key.prefix},
        )
        await api_key_repository.delete(session, api_key)

    async def authenticate(
        self,
        session: AsyncSession,
        settings: Settings,
        *,
        key: str,
        method: str,
        ip: str | None,
        cacheable: bool = False,
    ) -> Principal:
        """The key's user, if the key exists, has not expired, is used from an allowed address and has the
        scope this method needs. Without `admin` the user's superuser powers are withheld for the request.

        `cacheable` (reads only): the key and its user may come from the cache, whose entry lives no longer than
        the key's next `last_used_at` touch; any write to keys or users (a revocation, a disabled account)
        retires it, so those answer 401 at once. Expiry, addresses and scopes are checked on every request."""
        now = utcnow()
        found = await self._key_with_user(session, settings, hash_token(key), now, cacheable=cacheable)
        if found is None or (found[0].expires_at is not None and found[0].expires_at <= now):
            raise NotAuthenticated("The API key is invalid, expired or revoked.")
        api_key, user = found
        if not user.is_active:
            raise NotAuthenticated("The account is disabled.")
        if api_key.allowed_ips is not None:
            networks = [ip_network(cidr) for cidr in api_key.allowed_ips]
            if ip is None or not in_networks(ip, networks):
                raise IpNotAllowed("This API key may not be used from your address.")
        scopes = frozenset(api_key.scopes)
        if method not in SAFE_METHODS and Scope.write not in scopes:
            raise InsufficientScope("This API key is read-only (scope `read`).")
        if Scope.admin not in scopes:
            user.superuser_powers_withheld = True
        return Principal(user=user, session_id=None, api_key_id=api_key.id)

    async def _key_with_user(
        self, session: AsyncSession, settings: Settings, secret_hash: str, now: datetime, *, cacheable: bool
    ) -> tuple[ApiKey, User] | None:
        """The key and its user, from the cache when allowed; `last_used_at` is written when it is due."""
        cache = cache_of(session) if cacheable else None
        key = api_key_cache_key(secret_hash)
        generations: list[int] = []
        if cache is not None:
            cached, generations = await lookup(session, cache, key, (AUTH,))
            if cached is not None:
                entry = orjson.loads(cached)
                if entry["touch_by"] > now.timestamp():
                    return decode_row(ApiKey, entry["key"]), decode_row(User, entry["user"])
        found = await api_key_repository.get_with_user(session, secret_hash)
        if found is None:
            return None
        api_key, user = found
        interval = settings.session_touch_interval_seconds
        last_used = api_key.last_used_at
        if last_used is None or (now - last_used).total_seconds() >= interval:
            await api_key_repository.touch(session, api_key.id, now)
            last_used = now
        if cache is not None:
            user_row = {**encode_row(user), "hashed_password": ""}  # the hash never leaves the database  # nosec B105
            entry = {"key": encode_row(api_key), "user": user_row, "touch_by": last_used.timestamp() + interval}
            await cache.store(key, generations, dumps(entry))
        return api_key, user


api_key_service = ApiKeyService()
