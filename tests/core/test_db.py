"""The connection pool: a pooled PostgreSQL connection the server closed while it sat idle is replaced before a
request uses it (the ping after `DATABASE_PING_IDLE_SECONDS`); within that time the request that meets the dead
connection gets a 503 to retry, never a 500, and the next one a new connection."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from annotation_platform.main import create_app
from tests.conftest import Team, make_settings, problem, serve


@pytest.mark.parametrize("idle_seconds", [0, 0.2, 600])
async def test_a_connection_the_server_closed_is_replaced(
    team: Team, database_url: str, tmp_path: Path, idle_seconds: float
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to close connections")
    settings = make_settings(database_url, tmp_path, database_pool_size=1, database_ping_idle_seconds=idle_seconds)
    app = create_app(settings)
    url = f"/api/v1/containers/{team.container['id']}/items"
    async with serve(app) as client:
        assert (await client.get(url, headers=team.viewer.headers)).status_code == 200
        async with app.state.engine.connect() as connection:  # the pool's one connection
            pid = await connection.scalar(text("SELECT pg_backend_pid()"))
        dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        admin = await asyncpg.connect(dsn)
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        finally:
            await admin.close()
        await asyncio.sleep(0.3)

        response = await client.get(url, headers=team.viewer.headers)
        if idle_seconds < 0.3:  # pinged before use: nobody sees the dead connection
            assert response.status_code == 200, response.text
        else:  # used within its idle time: this request fails to be retried, the next one reconnects
            problem(response, 503, "service_unavailable")
            assert response.headers["retry-after"] == "1"
            assert (await client.get(url, headers=team.viewer.headers)).status_code == 200
        async with app.state.engine.connect() as connection:
            assert await connection.scalar(text("SELECT pg_backend_pid()")) != pid
