"""The read cache: two API processes sharing Redis, or one DATA_DIR, never serve a read that a committed write
made stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.main import create_app
from tests.conftest import Api, QueryCounter, Team, make_settings, serve
from tests.test_rate_limits import redis_url_or_skip


def cached_app(database_url: str, tmp_path: Path, redis_url: str | None) -> Any:
    return create_app(make_settings(database_url, tmp_path, cache_enabled=True, redis_url=redis_url))


@pytest.mark.parametrize("shared_by", ["redis", "data_dir"])
async def test_a_write_in_one_process_is_seen_by_the_next_read_in_another(
    client: httpx.AsyncClient, team: Team, database_url: str, tmp_path: Path, shared_by: str
) -> None:
    """With Redis the generations live there; without it (the embedded default: API processes and workers on one
    host) in a memory-mapped file of DATA_DIR, while each process keeps its own entries."""
    if shared_by == "redis":
        redis_url: str | None = redis_url_or_skip()
        redis.Redis.from_url(redis_url).flushdb()
        data_dirs = (tmp_path / "a", tmp_path / "b")
    else:
        redis_url = None
        data_dirs = (tmp_path / "shared", tmp_path / "shared")
    container_url = f"/api/v1/containers/{team.container['id']}"
    items_url = f"{container_url}/items"
    project_url = f"/api/v1/projects/{team.project['id']}"
    async with (
        serve(cached_app(database_url, data_dirs[0], redis_url)) as first,
        serve(cached_app(database_url, data_dirs[1], redis_url)) as second,
    ):
        for http in (first, second):  # warm both processes' view
            for url in (container_url, items_url, project_url):
                assert (await http.get(url, headers=team.viewer.headers)).status_code == 200
        engine: AsyncEngine = second._transport.app.state.engine  # type: ignore[attr-defined]
        counter = QueryCounter()
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: counter.statements.append(args[2]))
        page = await second.get(items_url, headers=team.viewer.headers)
        assert counter.count == 0, counter.statements  # served from the cache: no query at all
        assert len(page.json()["items"]) == 5

        # An item written through the first process: the second's page and container count move at once.
        created = await first.post(items_url, json={"external_id": "new"}, headers=team.owner.headers)
        assert created.status_code == 201, created.text
        assert [i["external_id"] for i in (await second.get(items_url, headers=team.viewer.headers)).json()["items"]][
            -1
        ] == "new"
        assert (await second.get(container_url, headers=team.viewer.headers)).json()["item_count"] == 6

        # Project and container changes.
        await first.patch(project_url, json={"name": "Renamed"}, headers=team.owner.headers)
        assert (await second.get(project_url, headers=team.viewer.headers)).json()["name"] == "Renamed"
        await first.patch(container_url, json={"name": "moved"}, headers=team.owner.headers)
        assert (await second.get(container_url, headers=team.viewer.headers)).json()["name"] == "moved"

        # A role change and a removal reach the permission look-ups of the other process.
        member_url = f"{project_url}/members/{team.viewer.id}"
        assert (await first.put(member_url, json={"role": "annotator"}, headers=team.owner.headers)).status_code == 200
        assert (await second.get(project_url, headers=team.viewer.headers)).json()["my_role"] == "annotator"
        assert (await first.delete(member_url, headers=team.owner.headers)).status_code == 204
        for url in (project_url, container_url, items_url):
            assert (await second.get(url, headers=team.viewer.headers)).status_code == 404

        # Logging out ends the token everywhere.
        assert (await second.get("/api/v1/users/me", headers=team.annotator.headers)).status_code == 200
        assert (await first.post("/api/v1/auth/jwt/logout", headers=team.annotator.headers)).status_code == 204
        assert (await second.get(items_url, headers=team.annotator.headers)).status_code == 401


async def test_writes_made_with_sql_outside_the_services_retire_entries_too(
    client: httpx.AsyncClient, api: Api, team: Team, database_url: str, tmp_path: Path
) -> None:
    """Imports move rows with textual SQL; such statements bump the generation of everything."""
    async with serve(cached_app(database_url, tmp_path, None)) as http:
        items_url = f"/api/v1/containers/{team.container['id']}/items"
        assert len((await http.get(items_url, headers=team.viewer.headers)).json()["items"]) == 5
        sessionmaker = http._transport.app.state.sessionmaker  # type: ignore[attr-defined]
        async with sessionmaker() as session, session.begin():
            await session.execute(text("DELETE FROM items WHERE external_id = 't00000'"))
        assert len((await http.get(items_url, headers=team.viewer.headers)).json()["items"]) == 4
