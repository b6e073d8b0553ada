"""PostgreSQL imports go through COPY into staging tables; SQLite through batched executemany. Both give the same
items and annotations for a file that mixes new and known turns, forward and backward parents and two annotators."""

from __future__ import annotations

from collections import Counter
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Api, QueryCounter, Team
from tests.data_import.helpers import chat_csv, run, start
from tests.history import assert_history_complete, catch_up

FIRST = [
    ("1", "E1", "first known turn", "", "1"),
    ("2", "E2", "second known turn", "E1", "1"),
]
MIXED = [
    ("3", "N1", "replies to a later turn", "N3", "4"),
    ("1", "E1", "known: matched, not changed", "", "9"),
    ("4", "N2", "replies to a known turn", "E2", "4"),
    ("5", "N3", "replies to the first turn", "E1", "5"),
    ("2", "E2", "known, same label", "N1", "2"),
    ("6", "N4", "replies to a turn nowhere", "X9", ""),
    ("7", "N5", "replies to itself", "N5", "5"),
]


async def snapshot(engine: AsyncEngine, container_id: str) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    async with engine.connect() as connection:
        items = (
            await connection.execute(
                text(
                    "SELECT i.external_id, i.sequence, p.external_id, i.content, i.metadata FROM items i "
                    "LEFT JOIN items p ON p.id = i.parent_id WHERE i.container_id = :c ORDER BY i.sequence"
                ),
                {"c": container_id.replace("-", "") if connection.dialect.name == "sqlite" else container_id},
            )
        ).all()
        annotations = (
            await connection.execute(
                text(
                    "SELECT i.external_id, a.type, a.data, u.username, a.version FROM annotations a "
                    "JOIN items i ON i.id = a.item_id JOIN users u ON u.id = a.created_by "
                    "ORDER BY u.username, i.external_id, a.type"
                )
            )
        ).all()

    def plain(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("{"):
            import json

            return json.loads(value)
        return value

    return [tuple(plain(v) for v in row) for row in items], [tuple(plain(v) for v in row) for row in annotations]


async def test_a_mixed_file_gives_the_same_result_on_both_backends(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    room = await api.container(team.project, team.owner)
    owner, annotator = team.owner.username, team.annotator.username
    batch_size = app.state.settings.import_batch_size
    app.state.settings.import_batch_size = 2  # parents and matches across batches
    try:
        first = await run(app, client, team.owner, await start(client, room, team.owner, chat_csv(FIRST)))
        before = await run(
            app,
            client,
            team.owner,
            await start(
                client, room, team.owner, chat_csv([(*FIRST[0][:4], "8"), (*FIRST[1][:4], "2")]), annotator=annotator
            ),
        )
        job = await run(
            app, client, team.owner, await start(client, room, team.owner, chat_csv(MIXED), annotator=annotator)
        )
    finally:
        app.state.settings.import_batch_size = batch_size

    assert first["status"] == before["status"] == job["status"] == "succeeded", job
    assert job["result"] == {
        "rows": 7,
        "items_created": 5,
        "items_matched": 2,
        "annotations_created": 4,
        "annotations_updated": 1,
        "annotations_unchanged": 1,
        "rows_skipped": 0,
        "dry_run": False,
        "written": True,
    }
    items, annotations = await snapshot(engine, room["id"])
    assert items == [
        ("E1", 0, None, "first known turn", {"user_id": "1"}),
        ("E2", 1, "E1", "second known turn", {"user_id": "2"}),
        ("N1", 2, "N3", "replies to a later turn", {"user_id": "3"}),
        ("N2", 3, "E2", "replies to a known turn", {"user_id": "4"}),
        ("N3", 4, "E1", "replies to the first turn", {"user_id": "5"}),
        ("N4", 5, None, "replies to a turn nowhere", {"user_id": "6"}),
        ("N5", 6, None, "replies to itself", {"user_id": "7"}),
    ]
    assert annotations == [
        ("E1", "thread", {"thread_id": "9"}, annotator, 2),
        ("E2", "thread", {"thread_id": "2"}, annotator, 1),
        ("N1", "thread", {"thread_id": "4"}, annotator, 1),
        ("N2", "thread", {"thread_id": "4"}, annotator, 1),
        ("N3", "thread", {"thread_id": "5"}, annotator, 1),
        ("N5", "thread", {"thread_id": "5"}, annotator, 1),
        ("E1", "thread", {"thread_id": "1"}, owner, 1),
        ("E2", "thread", {"thread_id": "1"}, owner, 1),
    ]
    container = await client.get(f"/api/v1/containers/{room['id']}", headers=team.owner.headers)
    assert container.json()["item_count"] == 7
    await _history_and_feed_follow(client, team, engine, room)

    again = await run(
        app, client, team.owner, await start(client, room, team.owner, chat_csv(MIXED), annotator=annotator)
    )
    assert again["result"]["items_created"] == again["result"]["annotations_created"] == 0
    assert again["result"]["annotations_updated"] == 0
    assert again["result"]["annotations_unchanged"] == 6
    assert await snapshot(engine, room["id"]) == (items, annotations)


async def _history_and_feed_follow(
    client: httpx.AsyncClient, team: Team, engine: AsyncEngine, room: dict[str, Any]
) -> None:
    """Imports write revisions and feed entries set-based too, credited to whoever started the import."""
    assert await assert_history_complete(engine) == 8
    # The team's container and its five items, then the room and what the three imports wrote.
    feed, _ = await catch_up(client, team.project["id"], team.owner.headers, None, 6 + 18)
    entries = [c for c in feed if c["container_id"] == room["id"]]
    by_kind = Counter((entry["resource_type"], entry["action"]) for entry in entries)
    # One forward parent (N1 -> N3) is set after its item went in; the re-labelled E1 is an update.
    assert by_kind == {
        ("container", "created"): 1,
        ("item", "created"): 7,
        ("item", "updated"): 1,
        ("annotation", "created"): 8,
        ("annotation", "updated"): 1,
    }
    assert {entry["changed_by"] for entry in entries} == {team.owner.id}
    items = await client.get(f"/api/v1/containers/{room['id']}/items", headers=team.owner.headers)
    assert {item["schema_version"] for item in items.json()["items"]} == {1}


async def test_postgresql_writes_through_copy_and_sqlite_through_executemany(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, backend: str, count_queries: QueryCounter
) -> None:
    room = await api.container(team.project, team.owner)
    rows = [(str(n), f"T{n:03d}", f"turn {n}", f"T{n - 1:03d}" if n else "", str(n % 3)) for n in range(50)]
    job_id = await start(client, room, team.owner, chat_csv(rows))
    count_queries.statements.clear()

    job = await run(app, client, team.owner, job_id)

    assert job["status"] == "succeeded", job
    assert job["result"]["items_created"] == job["result"]["annotations_created"] == 50
    statements = [" ".join(statement.split()) for statement in count_queries.statements]
    row_inserts = [
        s for s in statements if s.startswith(("INSERT INTO items (", "INSERT INTO annotations (")) and "VALUES" in s
    ]
    staged = [s for s in statements if "_stage" in s]
    if backend == "postgresql":
        assert row_inserts == [], "no row goes in through INSERT ... VALUES"
        assert any("INSERT INTO items" in s and "FROM import_items_stage" in s for s in statements)
        assert any("INSERT INTO annotations" in s and "FROM import_annotations_stage" in s for s in statements)
        # every parent comes earlier in the file, so all are set as the items go in, none by a final UPDATE
        assert not any(s.startswith("UPDATE items SET parent_id") for s in statements)
    else:
        assert staged == []
        assert row_inserts, "batched INSERT ... VALUES (executemany)"
