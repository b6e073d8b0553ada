"""The change feed: every kind of write shows up once, in commit order, and a client polling with its cursor
never misses a change, even one whose transaction started first and committed last (PostgreSQL)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from annotation_platform.annotation.schemas import AnnotationCreate
from annotation_platform.annotation.service import annotation_service
from annotation_platform.item.service import item_service
from annotation_platform.models import User
from annotation_platform.project.permissions import Action
from tests.conftest import Api, Team, problem
from tests.history import catch_up, read_changes


def _feed_url(team: Team) -> str:
    return f"/api/v1/projects/{team.project['id']}/changes"


async def _read(client: httpx.AsyncClient, team: Team, cursor: str | None, limit: int = 500) -> tuple[list[Any], str]:
    return await read_changes(client, team.project["id"], team.viewer.headers, cursor, limit)


async def _catch_up(
    client: httpx.AsyncClient, team: Team, cursor: str | None, expected: int, limit: int = 500
) -> tuple[list[Any], str]:
    return await catch_up(client, team.project["id"], team.viewer.headers, cursor, expected, limit)


async def test_every_write_appears_once_in_order(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    setup, cursor = await _catch_up(client, team, None, 6)
    assert [(c["resource_type"], c["action"]) for c in setup] == [("container", "created")] + [("item", "created")] * 5
    assert (setup[0]["version"], setup[0]["changed_by"]) == (1, team.owner.id)
    assert {c["resource_id"] for c in setup[1:]} == {item["id"] for item in team.items}
    empty, same = await _read(client, team, cursor)
    assert (empty, same) == ([], cursor)

    annotation = await api.annotate(team.items[0], team.annotator)
    url = f"/api/v1/annotations/{annotation['id']}"
    await client.patch(url, json={"data": {"thread_id": "2"}}, headers=team.annotator.headers)
    await client.delete(url, headers=team.annotator.headers)
    await client.patch(f"/api/v1/items/{team.items[1]['id']}", json={"content": "new"}, headers=team.owner.headers)
    await api.annotate(team.items[2], team.annotator)
    await client.delete(f"/api/v1/items/{team.items[2]['id']}", headers=team.owner.headers)
    schema = {"item_schema": {"type": "object"}}
    await client.patch(f"/api/v1/containers/{team.container['id']}", json=schema, headers=team.owner.headers)
    other = await api.container(team.project, team.owner)
    await client.delete(f"/api/v1/containers/{other['id']}", headers=team.owner.headers)

    first, after_first = await _catch_up(client, team, cursor, 4, limit=4)
    rest, end = await _catch_up(client, team, after_first, 6)
    seen = [(c["resource_type"], c["action"], c["version"]) for c in first + rest]
    assert seen == [
        ("annotation", "created", 1),
        ("annotation", "updated", 2),
        ("annotation", "deleted", 3),
        ("item", "updated", None),
        ("annotation", "created", 1),
        ("annotation", "deleted", 2),
        ("item", "deleted", None),
        ("container", "updated", 2),
        ("container", "created", 1),
        ("container", "deleted", 1),
    ]
    assert [c["changed_by"] for c in first[:3]] == [team.annotator.id] * 3
    assert first[0]["container_id"] == team.container["id"]
    positions = [c["position"] for c in setup + first + rest]
    assert positions == sorted(set(positions))
    assert (await _read(client, team, end))[0] == []

    problem(await client.get(_feed_url(team), params={"cursor": "nonsense"}, headers=team.viewer.headers), 400)
    counted = await client.get(_feed_url(team), params={"include_total": "true"}, headers=team.viewer.headers)
    assert counted.json()["total"] == len(positions)


async def test_concurrent_writers_lose_nothing(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    """Writers and a polling reader at the same time: the reader ends up with every entry exactly once."""
    _, cursor = await _catch_up(client, team, None, 6)
    collected: list[Any] = []
    done = asyncio.Event()

    async def poll() -> None:
        nonlocal cursor
        while not done.is_set():
            items, cursor = await _read(client, team, cursor, limit=7)
            collected.extend(items)
            await asyncio.sleep(0)

    async def write(writer: int) -> None:
        for round_ in range(6):
            item = team.items[(writer + round_) % len(team.items)]
            await api.annotate(item, team.annotator, data={"writer": writer, "round": round_})

    poller = asyncio.create_task(poll())
    await asyncio.gather(*(write(writer) for writer in range(4)))
    done.set()
    await poller
    rest, _ = await _catch_up(client, team, cursor, 24 - len(collected))
    collected += rest
    assert len(collected) == 24
    assert len({c["position"] for c in collected}) == 24
    assert {(c["resource_type"], c["action"]) for c in collected} == {("annotation", "created")}


async def test_a_change_committed_late_is_not_skipped(
    backend: str, app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    """A transaction that wrote first but commits last: the feed waits for it instead of moving past it."""
    if backend != "postgresql":
        pytest.skip("SQLite runs one writing transaction at a time: commit order is position order")
    _, cursor = await _catch_up(client, team, None, 6)
    async with app.state.sessionmaker() as session:
        annotator = await session.get(User, uuid.UUID(team.annotator.id))
        assert annotator is not None
        access = await item_service.access(
            session, item_id=uuid.UUID(team.items[0]["id"]), user=annotator, action=Action.annotate
        )
        slow = await annotation_service.create(
            session, access=access, user=annotator, data=AnnotationCreate(type="thread", data={"slow": True})
        )
        fast = await api.annotate(team.items[1], team.annotator, data={"fast": True})
        held, held_cursor = await _read(client, team, cursor)
        assert (held, held_cursor) == ([], cursor), "a later transaction's change must wait for the earlier one"
        await session.commit()
    arrived, _ = await _catch_up(client, team, cursor, 2)
    assert [c["resource_id"] for c in arrived] == [str(slow.id), fast["id"]]
