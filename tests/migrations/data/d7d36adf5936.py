"""backups: adds one table; users, projects, containers, items and annotations must come through untouched.

The rows and their checks are those of the jobs migration (`9fef43e14e30.py`), loaded from beside this file.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tests.migrations.data_modules import load


def seed(connection: Connection) -> None:
    load("9fef43e14e30").seed(connection)


def verify(connection: Connection) -> None:
    load("9fef43e14e30").verify(connection)
    assert connection.execute(text("SELECT count(*) FROM backups")).scalar_one() == 0
