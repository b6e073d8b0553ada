"""The read cache: two API processes sharing Redis, or one DATA_DIR, never serve a read that a committed write
made stale."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
from sqlalchemy import event, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.main import create_app
from annotation_platform.models import User
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
        if shared_by == "redis":
            # Every bump above was awaited on the event loop: the blocking client never opened a connection.
            blocking = first._transport.app.state.cache._sync  # type: ignore[attr-defined]
            assert blocking.connection_pool._created_connections == 0


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


async def test_api_keys_are_cached_and_a_revocation_answers_401_at_once_in_another_process(
    client: httpx.AsyncClient, team: Team, database_url: str, tmp_path: Path
) -> None:
    redis_url = redis_url_or_skip()
    redis.Redis.from_url(redis_url).flushdb()
    items_url = f"/api/v1/containers/{team.container['id']}/items"
    async with (
        serve(cached_app(database_url, tmp_path / "a", redis_url)) as first,
        serve(cached_app(database_url, tmp_path / "b", redis_url)) as second,
    ):
        created = await first.post(
            "/api/v1/api-keys", json={"name": "script", "scopes": ["read"]}, headers=team.viewer.headers
        )
        assert created.status_code == 201, created.text
        key = {"X-API-Key": created.json()["key"]}
        for _ in range(2):  # the first look-up of a container in a process learns its project, the second stores
            assert (await second.get(items_url, headers=key)).status_code == 200
        engine: AsyncEngine = second._transport.app.state.engine  # type: ignore[attr-defined]
        counter = QueryCounter()
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: counter.statements.append(args[2]))
        assert (await second.get(items_url, headers=key)).status_code == 200
        assert counter.count == 0, counter.statements  # the key, its user, the access and the page: all cached

        revoked = await first.delete(f"/api/v1/api-keys/{created.json()['id']}", headers=team.viewer.headers)
        assert revoked.status_code == 204
        assert (await second.get(items_url, headers=key)).status_code == 401

        # A disabled account: its keys stop working at once too.
        other = await first.post(
            "/api/v1/api-keys", json={"name": "other", "scopes": ["read"]}, headers=team.annotator.headers
        )
        other_key = {"X-API-Key": other.json()["key"]}
        assert (await second.get(items_url, headers=other_key)).status_code == 200
        async with second._transport.app.state.sessionmaker() as session, session.begin():  # type: ignore[attr-defined]
            await session.execute(update(User).where(User.id == uuid.UUID(team.annotator.id)).values(is_active=False))
        assert (await first.get(items_url, headers=other_key)).status_code == 401


async def test_annotation_pages_are_cached_and_follow_every_write(
    client: httpx.AsyncClient, team: Team, database_url: str, tmp_path: Path
) -> None:
    redis_url = redis_url_or_skip()
    redis.Redis.from_url(redis_url).flushdb()
    item = team.items[0]
    item_page = f"/api/v1/items/{item['id']}/annotations"
    container_page = f"/api/v1/containers/{team.container['id']}/annotations"
    async with (
        serve(cached_app(database_url, tmp_path / "a", redis_url)) as first,
        serve(cached_app(database_url, tmp_path / "b", redis_url)) as second,
    ):

        async def seen() -> tuple[list[object], list[object]]:
            by_item = (await second.get(item_page, headers=team.viewer.headers)).json()["items"]
            by_container = (await second.get(container_page, headers=team.viewer.headers)).json()["items"]
            return [a["data"] for a in by_item], [a["data"] for a in by_container]

        assert await seen() == ([], [])
        created = await first.post(item_page, json={"type": "note", "data": {"n": 1}}, headers=team.annotator.headers)
        assert created.status_code == 201, created.text
        assert await seen() == ([{"n": 1}], [{"n": 1}])

        engine: AsyncEngine = second._transport.app.state.engine  # type: ignore[attr-defined]
        counter = QueryCounter()
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *args: counter.statements.append(args[2]))
        assert await seen() == ([{"n": 1}], [{"n": 1}])
        # Both pages from the cache (the item's access check is not cached, the container's is).
        assert not [statement for statement in counter.statements if "FROM annotations" in statement]

        # Bulk writes of 100 rows or more go as one Core statement on PostgreSQL, which says which scopes it wrote.
        bulk = {"items": [{"item_id": item["id"], "type": "note", "data": {"n": 9}}] * 100}
        bulk_url = f"/api/v1/containers/{team.container['id']}/annotations/bulk"
        assert (await first.post(bulk_url, json=bulk, headers=team.annotator.headers)).status_code == 201
        assert await seen() == ([{"n": 1}] + [{"n": 9}] * 49, [{"n": 1}] + [{"n": 9}] * 49)
        items_url = f"/api/v1/containers/{team.container['id']}/items"
        assert len((await second.get(items_url, headers=team.viewer.headers)).json()["items"]) == 5
        new_items = {"items": [{"external_id": f"bulk-{n}"} for n in range(100)]}
        assert (await first.post(f"{items_url}/bulk", json=new_items, headers=team.owner.headers)).status_code == 201
        assert len((await second.get(items_url, headers=team.viewer.headers)).json()["items"]) == 50

        one = f"/api/v1/annotations/{created.json()['id']}"
        changed = await first.patch(
            one, json={"data": {"n": 2}}, headers={**team.annotator.headers, "If-Match": created.headers["etag"]}
        )
        assert changed.status_code == 200, changed.text
        assert await seen() == ([{"n": 2}] + [{"n": 9}] * 49, [{"n": 2}] + [{"n": 9}] * 49)

        # Deleting the item deletes its annotations in the database (a cascade no statement names).
        assert (await first.delete(f"/api/v1/items/{item['id']}", headers=team.owner.headers)).status_code == 204
        assert (await second.get(container_page, headers=team.viewer.headers)).json()["items"] == []


@pytest.mark.parametrize("page", ["items", "annotations"])
async def test_a_cached_page_of_a_container_costs_one_redis_round_trip_and_no_query(
    team: Team, database_url: str, tmp_path: Path, page: str
) -> None:
    """Issue 5's hot reads: the caller, the container with their role and the page come back in one MGET."""
    redis_url = redis_url_or_skip()
    redis.Redis.from_url(redis_url).flushdb()
    url = f"/api/v1/containers/{team.container['id']}/{page}?limit=3"
    async with serve(cached_app(database_url, tmp_path, redis_url)) as client:
        app = client._transport.app  # type: ignore[attr-defined]
        first = await client.get(url, headers=team.viewer.headers)
        assert first.status_code == 200, first.text
        await client.get(url, headers=team.viewer.headers)  # every entry is stored by now

        commands: list[str] = []
        redis_client, reads = app.state.cache._async, app.state.cache._reads
        execute, mget = redis_client.execute_command, reads.mget

        async def counted(*args: Any, **options: Any) -> Any:
            commands.append(str(args[0]))
            return await execute(*args, **options)

        async def counted_mget(names: list[str]) -> Any:
            commands.append("MGET")
            return await mget(names)

        counter = QueryCounter()
        event.listen(app.state.engine.sync_engine, "before_cursor_execute", lambda *a: counter.statements.append(a[2]))
        redis_client.execute_command = counted
        reads.mget = counted_mget
        again = await client.get(url, headers=team.viewer.headers)
        assert again.status_code == 200
        assert again.content == first.content
        assert commands == ["MGET"]
        assert counter.statements == []


class RedisProxy:
    """A TCP proxy in front of the machine's Redis that a test can cut or silence: an outage without stopping
    the shared server. `drop()` closes every proxied connection (as a Redis restart or an idle timeout would);
    while `silent`, it accepts connections and never answers."""

    def __init__(self, target: str) -> None:
        parsed = urlsplit(target)
        self._target = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
        self._database = parsed.path
        self._writers: list[asyncio.StreamWriter] = []
        self.silent = False
        self.connections = 0

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}{self._database}"

    async def __aexit__(self, *_exc: object) -> None:
        self._server.close()
        self.drop()

    def drop(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(client_writer)
        if self.silent:
            return
        server_reader, server_writer = await asyncio.open_connection(*self._target)
        self._writers.append(server_writer)
        await asyncio.gather(
            self._pipe(client_reader, server_writer), self._pipe(server_reader, client_writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


async def test_a_cache_connection_redis_closed_is_replaced_unseen(
    team: Team, database_url: str, tmp_path: Path
) -> None:
    """The cache's reads keep their Redis connections between requests; one that Redis closed meanwhile (a
    restart, a client timeout) is replaced within the same request, which is still served from the cache."""
    redis.Redis.from_url(redis_url_or_skip()).flushdb()
    url = f"/api/v1/containers/{team.container['id']}/items?limit=3"
    proxy = RedisProxy(redis_url_or_skip())
    async with proxy as proxied_url, serve(cached_app(database_url, tmp_path, proxied_url)) as http:
        first = await http.get(url, headers=team.viewer.headers)
        await http.get(url, headers=team.viewer.headers)  # every entry is stored by now
        engine = http._transport.app.state.engine  # type: ignore[attr-defined]
        counter = QueryCounter()
        event.listen(engine.sync_engine, "before_cursor_execute", lambda *a: counter.statements.append(a[2]))
        connections = proxy.connections

        proxy.drop()
        again = await http.get(url, headers=team.viewer.headers)
        assert again.status_code == 200, again.text
        assert again.content == first.content
        assert counter.statements == []  # answered from the cache, not the database
        assert proxy.connections > connections  # through a new connection


@pytest.mark.parametrize("outage", ["refused", "silent"])
async def test_without_redis_reads_come_from_the_database_and_stay_fresh(
    team: Team, database_url: str, tmp_path: Path, outage: str
) -> None:
    """A Redis that refuses connections, or accepts them and never answers (each read gives up after a second),
    costs the cache, not the answer: pages come from the database, and a write is seen by the next read."""
    redis.Redis.from_url(redis_url_or_skip()).flushdb()
    items_url = f"/api/v1/containers/{team.container['id']}/items"
    proxy = RedisProxy(redis_url_or_skip())
    async with proxy as proxied_url, serve(cached_app(database_url, tmp_path, proxied_url)) as http:
        before = await http.get(items_url, headers=team.viewer.headers)
        assert before.status_code == 200
        assert len(before.json()["items"]) == 5  # stored in Redis

        if outage == "refused":
            await proxy.__aexit__()
        else:
            proxy.silent = True
            proxy.drop()
        created = await http.post(items_url, json={"external_id": "during"}, headers=team.owner.headers)
        assert created.status_code == 201, created.text
        during = await http.get(items_url, headers=team.viewer.headers)
        assert during.status_code == 200, during.text
        assert [item["external_id"] for item in during.json()["items"]][-1] == "during"
