"""Health probes: liveness never depends on the database; readiness names the check that fails."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from annotation_platform.main import create_app
from tests.conftest import make_settings


@asynccontextmanager
async def app_on(database_url: str, data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(make_settings(database_url, data_dir))
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await application.state.engine.dispose()


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
