"""Checks shared by the history and change-feed tests: every live annotation's history ends at its current
state, with one revision per version, and the change feed's last word on it names that version; reading the
feed as a client does."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


async def read_changes(
    client: httpx.AsyncClient, project_id: str, headers: dict[str, str], cursor: str | None, limit: int = 500
) -> tuple[list[Any], str]:
    """One page of the feed, checked against the feed's promises; (entries, cursor to resume from)."""
    params: dict[str, Any] = {"limit": limit}
    if cursor:
        params["cursor"] = cursor
    response = await client.get(f"/api/v1/projects/{project_id}/changes", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"], "the feed always hands out a cursor to resume from"
    if "Link" in response.headers:
        assert len(body["items"]) == limit, "rel=next only while more changes are ready"
    return body["items"], body["next_cursor"]


async def catch_up(
    client: httpx.AsyncClient,
    project_id: str,
    headers: dict[str, str],
    cursor: str | None,
    expected: int,
    limit: int = 500,
) -> tuple[list[Any], str]:
    """Polls until `expected` more entries arrived: on a PostgreSQL server shared with other work, another
    database's open transaction holds the settled horizon back for a while."""
    seen: list[Any] = []
    deadline = time.monotonic() + 60
    while len(seen) < expected and time.monotonic() < deadline:
        items, cursor = await read_changes(client, project_id, headers, cursor, min(limit, expected - len(seen)))
        seen += items
        if not items:
            await asyncio.sleep(0.05)
    return seen, str(cursor)


def _plain(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def assert_history_complete(engine: AsyncEngine) -> int:
    """Returns how many annotations were checked."""
    async with engine.connect() as connection:
        current = (
            await connection.execute(
                text("SELECT id, version, type, data, start_offset, end_offset, is_gold FROM annotations")
            )
        ).all()
        revisions = (
            await connection.execute(
                text(
                    "SELECT annotation_id, version, type, data, start_offset, end_offset, is_gold, action "
                    "FROM annotation_revisions"
                )
            )
        ).all()
        changes = (
            await connection.execute(
                text(
                    "SELECT resource_id, version FROM changes WHERE resource_type = 'annotation' "
                    "ORDER BY txid, position"
                )
            )
        ).all()
    by_annotation: dict[Any, dict[int, tuple[Any, ...]]] = {}
    for row in revisions:
        by_annotation.setdefault(row[0], {})[row[1]] = (row[2], _plain(row[3]), row[4], row[5], bool(row[6]), row[7])
    last_change = {row[0]: row[1] for row in changes}
    for row in current:
        history = by_annotation.get(row[0], {})
        assert sorted(history) == list(range(1, row[1] + 1)), (row, sorted(history))
        assert history[row[1]][:5] == (row[2], _plain(row[3]), row[4], row[5], bool(row[6])), (row, history[row[1]])
        assert history[row[1]][5] != "deleted"
        assert last_change.get(row[0]) == row[1], (row, last_change.get(row[0]))
    return len(current)
