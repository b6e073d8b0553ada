"""project versions: existing jobs keep their kinds (SQLite rebuilds the jobs table to widen the check), and the
new table starts empty.

The rows are those of the agreement migration (`5c1e0a7d2b94.py`), loaded from beside this file.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tests.migrations.data_modules import load


def seed(connection: Connection) -> None:
    load("5c1e0a7d2b94").seed(connection)


def verify(connection: Connection) -> None:
    assert connection.execute(text("SELECT count(*) FROM project_versions")).scalar_one() == 0
    load("5c1e0a7d2b94").verify(connection)
