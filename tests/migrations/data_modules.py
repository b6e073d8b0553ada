"""Loading the per-revision data modules of `tests/migrations/data/`, which are files, not a package."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

DATA_DIR = Path(__file__).parent / "data"


def load(revision: str) -> ModuleType:
    """The module `data/<revision>.py` (a later revision's module reuses an earlier one's seed and verify)."""
    path = DATA_DIR / f"{revision}.py"
    spec = importlib.util.spec_from_file_location(f"migration_data_{revision}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
