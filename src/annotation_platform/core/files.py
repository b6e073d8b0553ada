"""Housekeeping of the files the service writes in DATA_DIR and BACKUP_DIR."""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from pathlib import Path


def remove_stale_files(directory: Path, pattern: str, before: datetime) -> int:
    """Deletes the files of `directory` matching `pattern` last modified before `before`; how many.

    For the temporary files of writers that were killed (their own cleanup never ran)."""
    removed = 0
    cutoff = before.timestamp()
    for path in directory.glob(pattern) if directory.is_dir() else ():
        with suppress(FileNotFoundError):
            if path.is_file() and path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
    return removed
