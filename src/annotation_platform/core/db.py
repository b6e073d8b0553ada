"""The engine, SQLite's pragmas, and the one database session each request owns."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from sqlalchemy import event
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
    return create_async_engine(
        url,
        echo=settings.database_echo,
        hide_parameters=True,
        json_deserializer=json_loads,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
    )


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


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed once after the endpoint returns, rolled back on any error."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
            if session.in_transaction():
                await session.commit()
        except BaseException:
            await session.rollback()
            raise


# scope="function": the commit runs when the endpoint returns, before the response is sent, so a client never
# gets a 2xx for a write that then failed to commit (FastAPI's default scope would commit after sending).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
