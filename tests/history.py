"""Checks shared by the history and change-feed tests: every live annotation's history ends at its current
state, with one revision per version, and the change feed's last word on it names that version."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


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
