"""backups: adds one table; users, projects, containers, items and annotations must come through untouched.

The rows and their checks are those of the jobs migration (`9fef43e14e30.py`), loaded from beside this file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from sqlalchemy import text
from sqlalchemy.engine import Connection


def _jobs_module() -> ModuleType:
    path = Path(__file__).with_name("9fef43e14e30.py")
    spec = importlib.util.spec_from_file_location("migration_data_9fef43e14e30", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def seed(connection: Connection) -> None:
    _jobs_module().seed(connection)


def verify(connection: Connection) -> None:
    _jobs_module().verify(connection)
    assert connection.execute(text("SELECT count(*) FROM backups")).scalar_one() == 0
