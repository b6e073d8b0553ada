"""The workers' Celery application, configured from the same settings as the API.

Each worker process gets one event loop and one async engine, made when the process starts
(`worker_process_init` under prefork; on first use under `--pool=solo`), and every task runs its coroutine on
that loop. An engine made at import and `asyncio.run()` per task breaks asyncpg ("attached to a different loop").
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from annotation_platform.config import Settings, get_settings
from annotation_platform.core.cache import create_cache
from annotation_platform.core.crypto import KeyRing
from annotation_platform.core.db import create_engine, create_sessionmaker
from annotation_platform.core.queue import create_celery

T = TypeVar("T")

logger = logging.getLogger(__name__)

settings = get_settings()
app = create_celery(settings)
app.conf.include = ["workers.tasks"]

import workers.observability  # noqa: E402, F401 - logs, Sentry and metrics of the tasks (signal handlers)


@dataclass
class Runtime:
    """What one worker process runs its tasks with."""

    pid: int
    settings: Settings
    loop: asyncio.AbstractEventLoop
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    key_ring: KeyRing

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    """This process's runtime, made on first use (and again after a fork: a child never shares its parent's)."""
    global _runtime
    if _runtime is None or _runtime.pid != os.getpid():
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        engine = create_engine(settings)
        key_ring = settings.resolved_key_ring()
        sessionmaker = create_sessionmaker(engine, app, create_cache(settings), key_ring)
        _runtime = Runtime(os.getpid(), settings, loop, engine, sessionmaker, key_ring)
    return _runtime


@worker_process_init.connect
def _start_process(**_: Any) -> None:
    runtime()


@worker_process_shutdown.connect
def _stop_process(**_: Any) -> None:
    global _runtime
    if _runtime is not None and _runtime.pid == os.getpid():
        _runtime.run(_runtime.engine.dispose())
        _runtime.loop.close()
        _runtime = None
