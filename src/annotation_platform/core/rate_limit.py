"""Rate limits: counters per API key, per user, else per client address, in Redis when it is configured.

The counting is done by `limits` (the engine behind slowapi), through its asyncio API so that a Redis round
trip never blocks the event loop. The check runs where the caller is known: right after authentication for
authenticated requests (`check_principal`), and per client address on the routes that take passwords (login,
registration, password reset), which have their own, stricter limit.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annotation_platform.config import Settings
from annotation_platform.core.clients import client_ip
from annotation_platform.core.errors import AppError

logger = logging.getLogger(__name__)

STATE_KEY = "rate_limit"


class RateLimited(AppError):
    status = 429
    code = "rate_limited"
    title = "Too many requests"
    description = "You sent more requests than your limit allows. Wait for `Retry-After` seconds, then retry."


@dataclass(frozen=True, slots=True)
class Quota:
    """Where a caller stands against one limit: sent as the `X-RateLimit-*` headers."""

    limit: int
    remaining: int
    reset_epoch: int

    def headers(self) -> dict[str, str]:
        return {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_epoch),
        }


class RateLimiter:
    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.rate_limit_enabled
        self.default = parse(settings.rate_limit_default)
        self.auth = parse(settings.rate_limit_auth)
        self.anonymous = parse(settings.rate_limit_anonymous)
        storage: Storage
        if settings.redis_url:
            storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                key_prefix=f"{settings.broker_key_prefix}ratelimit",
                socket_connect_timeout=1,
                socket_timeout=1,
            )
        else:
            storage = MemoryStorage()
        self.strategy = FixedWindowRateLimiter(storage)

    async def hit(self, connection: HTTPConnection, limit: RateLimitItem, *key: str) -> None:
        """Count one request against `limit` for `key`; 429 once it is used up.

        When the counter store cannot be reached, the request passes (and a warning is logged): a Redis outage
        should not take the whole API down with it."""
        if not self.enabled:
            return
        try:
            allowed, remaining, reset_time = await self._count(limit, key)
        except (RedisError, OSError) as exc:
            logger.warning("rate limit store unreachable, request not counted: %s", type(exc).__name__)
            return
        quota = Quota(limit=limit.amount, remaining=remaining, reset_epoch=math.ceil(reset_time))
        connection.state.rate_limit = quota
        if not allowed:
            retry_after = max(1, math.ceil(reset_time - time.time()))
            raise RateLimited(
                f"Limit of {limit} reached; retry in {retry_after} s.",
                headers={**quota.headers(), "Retry-After": str(retry_after)},
            )

    async def _count(self, limit: RateLimitItem, key: tuple[str, ...]) -> tuple[bool, int, float]:
        """One request counted in `limit`'s fixed window for `key`: whether it was within the limit, how many are
        left, and when the window resets. What the strategy's `hit` and `get_window_stats` tell, in two round
        trips instead of three (the count comes back from the increment); rate limits are on by default, and
        each round trip through redis-py costs about a sixth of a page served from the cache."""
        name = limit.key_for(*key)
        count = await self.strategy.storage.incr(name, limit.get_expiry())
        reset_time = await self.strategy.storage.get_expiry(name)
        return count <= limit.amount, max(0, limit.amount - count), reset_time

    async def failures(self, limit: RateLimitItem, *key: str) -> tuple[bool, int]:
        """Whether `key` may still fail (remaining tries > 0) and the seconds until its window resets."""
        try:
            stats = await self.strategy.get_window_stats(limit, *key)
        except (RedisError, OSError):
            return True, 0
        return stats.remaining > 0, max(1, math.ceil(stats.reset_time - time.time()))

    async def fail(self, limit: RateLimitItem, *key: str) -> bool:
        """Count one failure; False when that was the last one allowed in the window."""
        try:
            _, remaining, _ = await self._count(limit, key)
        except (RedisError, OSError):
            return True
        return remaining > 0

    async def crossed(self, limit: RateLimitItem, *key: str) -> bool:
        """Count one occurrence; True exactly once per window: for the occurrence that uses up the limit."""
        try:
            allowed, remaining, _ = await self._count(limit, key)
        except (RedisError, OSError):
            return False
        return allowed and remaining == 0

    async def clear(self, limit: RateLimitItem, *key: str) -> None:
        try:
            await self.strategy.clear(limit, *key)
        except (RedisError, OSError):
            logger.warning("rate limit store unreachable, counter not cleared")


def rate_limiter_of(connection: HTTPConnection) -> RateLimiter:
    limiter: RateLimiter = connection.app.state.rate_limiter
    return limiter


async def limit_auth_route(request: Request) -> None:
    """The stricter limit of the routes that take passwords, per client address."""
    limiter = rate_limiter_of(request)
    await limiter.hit(request, limiter.auth, "auth", client_ip(request) or "unknown")


class RateLimitHeadersMiddleware:
    """Adds `X-RateLimit-*` to responses of requests that were counted against a limit."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_quota(message: Message) -> None:
            if message["type"] == "http.response.start":
                quota = scope.get("state", {}).get(STATE_KEY)
                if isinstance(quota, Quota):
                    headers = MutableHeaders(scope=message)
                    for name, value in quota.headers().items():
                        if name not in headers:
                            headers.append(name, value)
            await send(message)

        await self.app(scope, receive, send_with_quota)
