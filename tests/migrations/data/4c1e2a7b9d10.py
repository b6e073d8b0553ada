"""api_keys: adds one table; everything the offsets-trigger migration kept must come through untouched.

The rows and their checks are those of the offsets-trigger migration (`5b0c2e9a41d7.py`), loaded from beside this file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from sqlalchemy import text
from sqlalchemy.engine import Connection


def _previous() -> ModuleType:
    path = Path(__file__).with_name("5b0c2e9a41d7.py")
    spec = importlib.util.spec_from_file_location("migration_data_5b0c2e9a41d7", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed(connection: Connection) -> None:
    _previous().seed(connection)


def verify(connection: Connection) -> None:
    _previous().verify(connection)
    assert connection.execute(text("SELECT count(*) FROM api_keys")).scalar_one() == 0
