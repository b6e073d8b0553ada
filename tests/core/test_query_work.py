"""Query work: every list and detail read costs a fixed number of statements, whatever the data's size, and on
PostgreSQL the big lists are read through an index that serves their order (no sort, no sequential scan)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import PASSWORD, Api, Team

# Statements per read: the login session with its user, the resource with the caller's role, the data. Lists of
# the caller's own things need no access look-up; a fourth statement is a documented extra (e.g. gold marks).
BUDGET = 4


def reads(team: Team, annotation_id: str) -> list[str]:
    project, container, item = team.project["id"], team.container["id"], team.items[0]["id"]
    return [
        "/api/v1/projects",
        f"/api/v1/projects/{project}",
        f"/api/v1/projects/{project}/members",
        f"/api/v1/projects/{project}/members/{team.viewer.id}",
        f"/api/v1/projects/{project}/containers",
        f"/api/v1/containers/{container}",
        f"/api/v1/containers/{container}/items",
        f"/api/v1/items/{item}",
        f"/api/v1/items/{item}/annotations",
        f"/api/v1/containers/{container}/annotations",
        f"/api/v1/annotations/{annotation_id}",
        "/api/v1/users/me",
        "/api/v1/users/me/sessions",
        "/api/v1/api-keys",
        "/api/v1/jobs",
        f"/api/v1/audit-events?project_id={project}",
    ]


async def statements_of(client: httpx.AsyncClient, engine: AsyncEngine, url: str, headers: dict[str, str]) -> int:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        response = await client.get(url, headers=headers)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert response.status_code == 200, (url, response.text)
    return len(seen)


async def test_every_list_and_detail_read_costs_a_fixed_number_of_statements(
    client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    annotation = await api.annotate(team.items[0], team.owner)
    small = {url: await statements_of(client, engine, url, team.owner.headers) for url in reads(team, annotation["id"])}

    # More of everything each list shows: members, containers, items, annotations, sessions, keys, audit events.
    for _ in range(12):
        member = await api.user()
        await api.add_member(team.project, team.owner, member, "viewer")
        await api.container(team.project, team.owner)
        await api.annotate(team.items[0], team.owner)
        await client.post("/api/v1/auth/jwt/login", data={"username": team.owner.email, "password": PASSWORD})
        await client.post("/api/v1/api-keys", json={"name": "k", "scopes": ["read"]}, headers=team.owner.headers)
    await client.post(
        f"/api/v1/containers/{team.container['id']}/items/bulk",
        json={"items": [{"external_id": f"more{n}"} for n in range(40)]},
        headers=team.owner.headers,
    )
    large = {url: await statements_of(client, engine, url, team.owner.headers) for url in small}

    assert large == small
    assert max(small.values()) <= BUDGET, small


@pytest.fixture
async def big_container(client: httpx.AsyncClient, team: Team, engine: AsyncEngine) -> dict[str, Any]:
    """20,000 items (and two annotations each) beside another container's, analysed as autovacuum would."""
    if engine.dialect.name != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL")
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO items (id, container_id, external_id, content, metadata, sequence, created_at,"
                " updated_at) SELECT gen_random_uuid(), :container, 'bulk' || g, 'text', '{}', 100 + g, now(),"
                " now() FROM generate_series(1, 20000) AS g"
            ),
            {"container": team.container["id"]},
        )
        await connection.execute(
            text(
                "INSERT INTO annotations (id, item_id, container_id, type, data, created_by, version, is_gold,"
                " created_at, updated_at) SELECT gen_random_uuid(), i.id, i.container_id, t, '{}', :user, 1, false,"
                " now(), now() FROM items AS i CROSS JOIN (VALUES ('thread'), ('topic')) AS types(t)"
            ),
            {"user": team.owner.id},
        )
        await connection.execute(text("ANALYZE items, annotations"))
    return team.container


async def test_big_pages_are_read_in_index_order(
    client: httpx.AsyncClient, team: Team, engine: AsyncEngine, big_container: dict[str, Any]
) -> None:
    container = big_container["id"]
    first = await client.get(f"/api/v1/containers/{container}/items", headers=team.viewer.headers)
    cursor = first.json()["next_cursor"]
    pages = [
        (f"/api/v1/containers/{container}/items", {"cursor": cursor}),
        (f"/api/v1/containers/{container}/annotations", {}),
        (f"/api/v1/containers/{container}/annotations", {"type": "topic"}),
    ]
    for url, params in pages:
        captured: list[tuple[str, Any]] = []

        def record(
            _conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any, into: list[Any] = captured
        ) -> None:
            if "ORDER BY" in statement:
                into.append((statement, parameters))

        event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            assert (await client.get(url, params=params, headers=team.viewer.headers)).status_code == 200
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", record)
        assert len(captured) == 1, captured
        statement, parameters = captured[0]
        async with engine.connect() as connection:
            plan = "\n".join(row[0] for row in await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
        assert "Sort" not in plan, (url, params, plan)
        assert "Seq Scan" not in plan, (url, params, plan)
