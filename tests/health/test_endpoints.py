"""Health probes: liveness never depends on the database; readiness names the check that fails."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from annotation_platform.main import create_app
from tests.conftest import in_ci, make_settings, serve


@asynccontextmanager
async def app_on(database_url: str, data_dir: Path, **settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(create_app(make_settings(database_url, data_dir, **settings))) as http:
        yield http


async def test_live(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


async def test_ready_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["migrations"]["status"] == "ok"
    assert response.headers["content-type"].startswith("application/json")


async def test_not_ready_on_an_unmigrated_database(tmp_path: Path) -> None:
    async with app_on(f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}", tmp_path) as http:
        response = await http.get("/health/ready")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["status"] == "failing"
        assert body["checks"]["database"]["status"] == "ok"
        assert body["checks"]["migrations"]["status"] == "failing"
        assert (await http.get("/health/live")).status_code == 200


async def test_not_ready_on_a_database_at_another_revision(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        connection.execute("INSERT INTO alembic_version VALUES ('0000deadbeef')")
    connection.close()
    async with app_on(f"sqlite+aiosqlite:///{path}", tmp_path) as http:
        response = await http.get("/health/ready")
        assert response.status_code == 503, response.text
        migrations = response.json()["checks"]["migrations"]
        assert migrations["status"] == "failing"
        assert "0000deadbeef" in migrations["detail"]
        assert "upgrade" in migrations["detail"]


async def test_not_ready_when_the_database_is_down(tmp_path: Path) -> None:
    async with app_on("postgresql+asyncpg://postgres@127.0.0.1:1/x", tmp_path) as http:
        response = await http.get("/health/ready")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["status"] == "failing"
        assert body["checks"]["database"]["status"] == "failing"
        assert "migrations" not in body["checks"] or body["checks"]["migrations"]["status"] != "ok"
        assert "127.0.0.1" not in response.text
        assert "x-request-id" in response.headers

        live = await http.get("/health/live")
        assert live.status_code == 200
        assert live.json()["status"] == "ok"


async def test_ready_checks_redis_when_configured(database_url: str, tmp_path: Path) -> None:
    """Redis is this machine's shared server (never stopped by a test); the outage is a dead port."""
    redis_url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    async with app_on(database_url, tmp_path, redis_url=redis_url) as http:
        response = await http.get("/health/ready")
        redis_check = response.json()["checks"]["redis"]
        if redis_check["status"] != "ok" and not in_ci():
            pytest.skip(f"Redis not reachable at {redis_url}; set TEST_REDIS_URL")
        assert response.status_code == 200, response.text
        assert redis_check["status"] == "ok"

    async with app_on(database_url, tmp_path, redis_url="redis://127.0.0.1:1/0") as http:
        response = await http.get("/health/ready")
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["checks"]["redis"]["status"] == "failing"
        assert body["checks"]["database"]["status"] == "ok"
        assert (await http.get("/health/live")).status_code == 200


async def test_ready_has_no_redis_check_in_embedded_mode(client: httpx.AsyncClient) -> None:
    assert "redis" not in (await client.get("/health/ready")).json()["checks"]
