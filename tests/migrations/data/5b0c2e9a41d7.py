"""offsets trigger with a WHEN condition: no row changes, and offsets past the content are still refused."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import exc, text
from sqlalchemy.engine import Connection


def _backups_module() -> ModuleType:
    path = Path(__file__).with_name("d7d36adf5936.py")
    spec = importlib.util.spec_from_file_location("migration_data_d7d36adf5936", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed(connection: Connection) -> None:
    _backups_module().seed(connection)


def verify(connection: Connection) -> None:
    _backups_module().verify(connection)
    with pytest.raises(exc.DBAPIError), connection.begin_nested():
        connection.execute(text("UPDATE annotations SET end_offset = 500"))
    assert connection.execute(text("SELECT max(end_offset) FROM annotations")).scalar_one() == 5
