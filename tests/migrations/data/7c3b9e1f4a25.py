"""webhooks: adds two tables; everything the agreement-and-gold migration kept must come through untouched.

The rows and their checks are those of the agreement-and-gold migration (`5c1e0a7d2b94.py`), loaded from beside
this file.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from tests.migrations.data_modules import load


def seed(connection: Connection) -> None:
    load("5c1e0a7d2b94").seed(connection)


def verify(connection: Connection) -> None:
    assert connection.execute(text("SELECT count(*) FROM webhooks")).scalar_one() == 0
    assert connection.execute(text("SELECT count(*) FROM webhook_deliveries")).scalar_one() == 0
    load("5c1e0a7d2b94").verify(connection)
