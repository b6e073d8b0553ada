"""The engine, SQLite's pragmas, and the one database session each request owns."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import MutableMapping
from typing import Annotated, Any

import anyio
import orjson
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from annotation_platform.config import Settings

# aiosqlite logs every statement with its bound values at DEBUG; values (emails, texts) never go to logs.
logging.getLogger("aiosqlite").setLevel(logging.INFO)


def json_loads(text: str | bytes) -> Any:
    """JSON columns read by orjson (several times faster than `json`); what orjson refuses but `json` reads
    (NaN, integers beyond 64 bits, in rows written before) still reads as it always did."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def create_engine(settings: Settings) -> AsyncEngine:
    """`hide_parameters`: bound values (emails, annotation text) never reach logs or error messages."""
    url = settings.resolved_database_url
    if settings.is_sqlite:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            echo=settings.database_echo,
            hide_parameters=True,
            json_deserializer=json_loads,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
        )
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine
    engine = create_async_engine(
        url,
        echo=settings.database_echo,
        hide_parameters=True,
        json_deserializer=json_loads,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=settings.database_ping_idle_seconds == 0,
    )
    if settings.database_ping_idle_seconds:
        _ping_idle_connections(engine, settings.database_ping_idle_seconds)
    return engine


def _ping_idle_connections(engine: AsyncEngine, idle_seconds: float) -> None:
    """SQLAlchemy's `pool_pre_ping` pings on every checkout: a round trip, a fifth of an uncached page's CPU. A
    connection that was in use a moment ago is alive; one that sat idle may have been closed by the server, a
    proxy or a failover, so it is pinged first and, if dead, replaced before the request sees it. A server that
    restarts within `idle_seconds` of a connection's last use fails one request; SQLAlchemy then replaces every
    connection older than the failure."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # whatever a dead connection raises: the pool retries with a new one
            raise DisconnectionError("a pooled connection did not answer its ping") from exc


_IDLE_SINCE = "annotation_platform.idle_since"


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """WAL lets readers run beside a writer; the busy timeout makes writers queue instead of failing."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()


def create_sessionmaker(
    engine: AsyncEngine, queue: Any = None, cache: Any = None, key_ring: Any = None
) -> async_sessionmaker[AsyncSession]:
    """Sessions of this maker send the tasks enqueued with `core.queue.enqueue_after_commit` to `queue`, retire
    the entries of `cache` their commits make stale (core/cache.py), and seal and open the data of sensitive
    projects with `key_ring` (core/field_crypto.py; the settings' ring when None)."""
    from annotation_platform.core.cache import CACHE_INFO_KEY
    from annotation_platform.core.field_crypto import KEY_RING_INFO_KEY
    from annotation_platform.core.queue import QUEUE_INFO_KEY

    info = {QUEUE_INFO_KEY: queue, CACHE_INFO_KEY: cache}
    if key_ring is not None:
        info[KEY_RING_INFO_KEY] = key_ring
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False, info=info)


_SESSION = "annotation_platform.session"
"""Where a request's session lives in its ASGI scope; present (None until first asked for) while `ApiRoute`
manages the request's unit of work."""


async def get_session(request: Request) -> AsyncSession:
    """The request's unit of work, opened when first asked for. The route (`ApiRoute`, core/routing.py) commits
    it once the endpoint has returned, before the answer is sent, so a client never gets a 2xx for a write that
    then failed to commit, and rolls it back on any error. A FastAPI generator dependency did the same at a tenth
    of a cached page's time (its exit stack and cancel scopes)."""
    if _SESSION not in request.scope:
        raise RuntimeError("SessionDep is for routes of an ApiRouter, which commit and close the session")
    session: AsyncSession | None = request.scope[_SESSION]
    if session is None:
        sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
        session = request.scope[_SESSION] = sessionmaker()
    return session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def begin_unit_of_work(scope: MutableMapping[str, Any]) -> None:
    scope[_SESSION] = None


async def commit_unit_of_work(scope: MutableMapping[str, Any]) -> None:
    """Commits and closes the request's session, if it opened one."""
    session: AsyncSession | None = scope.pop(_SESSION, None)
    if session is None:
        return
    try:
        if session.in_transaction():
            await session.commit()
    except BaseException:
        scope[_SESSION] = session  # for `abort_unit_of_work`
        raise
    await session.close()


async def abort_unit_of_work(scope: MutableMapping[str, Any]) -> None:
    """Rolls back and closes the request's session, if it opened one, whatever cancels the request meanwhile."""
    session: AsyncSession | None = scope.pop(_SESSION, None)
    if session is None:
        return
    with anyio.CancelScope(shield=True):
        try:
            await session.rollback()
        finally:
            await session.close()
