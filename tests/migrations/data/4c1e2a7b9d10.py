"""api_keys: adds one table; everything the offsets-trigger migration kept must come through untouched.

The rows and their checks are those of the offsets-trigger migration (`5b0c2e9a41d7.py`), loaded from beside this file.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tests.migrations.data_modules import load


def seed(connection: Connection) -> None:
    load("5b0c2e9a41d7").seed(connection)


def verify(connection: Connection) -> None:
    load("5b0c2e9a41d7").verify(connection)
    assert connection.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 0
