"""audit_events: adds one table; everything the api_keys migration kept must come through untouched.

The rows and their checks are those of the api_keys migration (`4c1e2a7b9d10.py`), loaded from beside this file.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tests.migrations.data_modules import load


def seed(connection: Connection) -> None:
    load("4c1e2a7b9d10").seed(connection)


def verify(connection: Connection) -> None:
    load("4c1e2a7b9d10").verify(connection)
    assert connection.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == 0
