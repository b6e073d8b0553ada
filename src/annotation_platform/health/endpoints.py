from __future__ import annotations

import time
from typing import Literal

from celery import Celery
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.concurrency import run_in_threadpool

from annotation_platform.config import Settings
from annotation_platform.core.migrations import MigrationsNotFound, current_revisions

router = APIRouter(prefix="/health", tags=["health"])


class Check(BaseModel):
    status: Literal["ok", "failing"]
    latency_ms: float
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "failing"]
    checks: dict[str, Check]


@router.get("/live", operation_id="getLiveness", response_model=Health)
async def live() -> Health:
    """The process is up and serving; checks nothing else."""
    return Health(status="ok", checks={})


@router.get(
    "/ready",
    operation_id="getReadiness",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is failing; `checks` names it."}},
)
async def ready(request: Request) -> Response:
    """Ready to serve: the database answers and is migrated to the code's revision; Redis answers if configured;
    at least one worker answers a ping (unless HEALTH_CHECK_WORKERS=false; off by default when ENVIRONMENT=test)."""
    engine: AsyncEngine = request.app.state.engine
    expected: set[str] | None = request.app.state.migration_heads
    checks: dict[str, Check] = {}
    started = time.perf_counter()
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
            checks["database"] = Check(status="ok", latency_ms=_since(started))
            started = time.perf_counter()
            current = await current_revisions(connection)
        if expected is None:
            raise MigrationsNotFound("migration scripts not found; cannot compare revisions")
        if current != expected:
            checks["migrations"] = Check(
                status="failing",
                latency_ms=_since(started),
                detail=f"database at {sorted(current) or 'no revision'}, code expects {sorted(expected)}; "
                "run `annotation-platform db upgrade`",
            )
        else:
            checks["migrations"] = Check(status="ok", latency_ms=_since(started))
    except MigrationsNotFound as exc:
        checks["migrations"] = Check(status="failing", latency_ms=_since(started), detail=str(exc))
    except Exception as exc:
        name = "migrations" if "database" in checks else "database"
        checks[name] = Check(status="failing", latency_ms=_since(started), detail=type(exc).__name__)
    redis: Redis | None = request.app.state.redis
    if redis is not None:
        checks["redis"] = await _check_redis(redis)
    settings: Settings = request.app.state.settings
    if settings.checks_workers:
        checks["workers"] = await _check_workers(request.app.state.queue, settings.health_worker_timeout_seconds)
    failing = any(check.status == "failing" for check in checks.values())
    body = Health(status="failing" if failing else "ok", checks=checks)
    return Response(body.model_dump_json(), status_code=503 if failing else 200, media_type="application/json")


async def _check_redis(redis: Redis) -> Check:
    started = time.perf_counter()
    try:
        await redis.ping()
    except (RedisError, OSError) as exc:
        return Check(status="failing", latency_ms=_since(started), detail=type(exc).__name__)
    return Check(status="ok", latency_ms=_since(started))


async def _check_workers(queue: Celery, wait_seconds: float) -> Check:
    started = time.perf_counter()
    try:
        replies = await run_in_threadpool(queue.control.ping, timeout=wait_seconds, limit=1)
    except Exception as exc:
        return Check(status="failing", latency_ms=_since(started), detail=type(exc).__name__)
    if not replies:
        return Check(status="failing", latency_ms=_since(started), detail=f"no worker answered within {wait_seconds} s")
    return Check(status="ok", latency_ms=_since(started), detail=f"{len(replies)} worker(s)")


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
