"""oauth_accounts: adds one table; everything the audit_events migration kept must come through untouched.

The rows and their checks are those of the audit_events migration (`8a3f5c2e1b47.py`), loaded from beside this file.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tests.migrations.data_modules import load


def seed(connection: Connection) -> None:
    load("8a3f5c2e1b47").seed(connection)


def verify(connection: Connection) -> None:
    load("8a3f5c2e1b47").verify(connection)
    assert connection.execute(text("SELECT count(*) FROM oauth_accounts")).scalar_one() == 0
