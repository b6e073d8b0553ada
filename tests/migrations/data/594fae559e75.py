"""history and change feed: everything the agreement migration kept comes through; the existing annotation gets
its one revision, the container its schema as version 1, items version 1, and the change feed starts empty.

The rows are those of the agreement migration (`5c1e0a7d2b94.py`), loaded from beside this file.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tests.migrations.data_modules import load


def seed(connection: Connection) -> None:
    load("5c1e0a7d2b94").seed(connection)


def verify(connection: Connection) -> None:
    revision = connection.execute(
        text(
            "SELECT a.version, r.action, r.type, r.start_offset, r.end_offset, r.changed_by = a.created_by "
            "FROM annotation_revisions AS r JOIN annotations AS a ON a.id = r.annotation_id"
        )
    ).all()
    assert [tuple(row) for row in revision] == [(1, "created", "thread", 0, 5, True)]
    assert connection.execute(text("SELECT version FROM container_schema_versions")).all() == [(1,)]
    assert connection.execute(text("SELECT item_schema_version FROM containers")).all() == [(1,)]
    assert connection.execute(text("SELECT DISTINCT schema_version FROM items")).all() == [(1,)]
    assert connection.execute(text("SELECT require_if_match FROM projects")).one()[0] in (False, 0)
    assert connection.execute(text("SELECT count(*) FROM changes")).scalar_one() == 0
    load("5c1e0a7d2b94").verify(connection)
