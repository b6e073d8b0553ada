"""offsets trigger with a WHEN condition: no row changes, and offsets past the content are still refused."""

from __future__ import annotations

import pytest
from sqlalchemy import exc, text
from sqlalchemy.engine import Connection

from tests.migrations.data_modules import load


def seed(connection: Connection) -> None:
    load("d7d36adf5936").seed(connection)


def verify(connection: Connection) -> None:
    load("d7d36adf5936").verify(connection)
    with pytest.raises(exc.DBAPIError), connection.begin_nested():
        connection.execute(text("UPDATE annotations SET end_offset = 500"))
    assert connection.execute(text("SELECT max(end_offset) FROM annotations")).scalar_one() == 5
