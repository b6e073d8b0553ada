"""Bursts of denied requests: a user (or key) that collects many 403 and 404 answers in a short time may be
probing for other people's ids. Crossing DENIED_BURST_THRESHOLD within DENIED_BURST_WINDOW_SECONDS records one
`access.denied_burst` security event (which also alerts), once per window."""

from __future__ import annotations

import logging
import uuid

from limits import RateLimitItemPerSecond
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annotation_platform.audit.context import AuditContext, bind_context
from annotation_platform.audit.service import audit_service
from annotation_platform.config import Settings
from annotation_platform.core.rate_limit import rate_limiter_of

logger = logging.getLogger(__name__)

DENIED_STATUSES = frozenset({403, 404})


class DeniedAccessMonitor:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.limit = RateLimitItemPerSecond(settings.denied_burst_threshold, settings.denied_burst_window_seconds)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = [0]

        async def watching_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        await self.app(scope, receive, watching_send)
        user_id = scope.get("state", {}).get("user_id")
        if status[0] in DENIED_STATUSES and isinstance(user_id, uuid.UUID):
            await self._count(scope, user_id)

    async def _count(self, scope: Scope, user_id: uuid.UUID) -> None:
        connection = HTTPConnection(scope)
        if not await rate_limiter_of(connection).crossed(self.limit, "denied", str(user_id)):
            return
        try:
            async with connection.app.state.sessionmaker() as session:
                bind_context(session, AuditContext.of_request(connection, user_id=user_id))
                await audit_service.record_now(
                    session,
                    action="access.denied_burst",
                    resource_type="user",
                    resource_id=user_id,
                    after={"denied": self.limit.amount, "window_seconds": self.limit.get_expiry()},
                )
        except Exception:
            # The response is already sent; a failure to record must not turn into an error for anyone.
            logger.exception("could not record a denied-access burst")
