"""Where export files live: one small interface, so an S3-compatible store can replace the local folder.

A file is written under a temporary name and published (renamed) only when the writer ends cleanly, so a
reader never sees half an export; a writer that fails leaves nothing behind, and one that was killed leaves a
temporary file that the periodic expiry removes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, Protocol

from annotation_platform.config import Settings
from annotation_platform.core.files import remove_stale_files

READ_CHUNK_BYTES = 1024 * 1024


class ExportStorage(Protocol):
    def open_for_write(self, name: str) -> AbstractContextManager[BinaryIO]:
        """A binary file to write `name` to; it appears under `name` only if the block ends without an error."""

    def open_for_read(self, name: str) -> BinaryIO:
        """The stored file, for reading (the caller closes it); FileNotFoundError when there is none."""

    def delete(self, name: str) -> bool:
        """Removes the file; False when there was none."""

    def remove_partials(self, before: datetime) -> int:
        """Removes files a killed writer left half-written, untouched since `before`; how many."""

    def exists(self, name: str) -> bool: ...

    def size(self, name: str) -> int: ...

    def path(self, name: str) -> Path | None:
        """A local path to serve the file from directly, or None for stores that are not local files."""


class LocalExportStorage:
    """Files in one folder, `DATA_DIR/exports` by default."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _file(self, name: str) -> Path:
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise ValueError(f"not a plain file name: {name!r}")
        return self.root / name

    @contextmanager
    def open_for_write(self, name: str) -> Iterator[BinaryIO]:
        target = self._file(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{name}.part")
        try:
            with partial.open("wb") as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)

    def open_for_read(self, name: str) -> BinaryIO:
        return self._file(name).open("rb")

    def delete(self, name: str) -> bool:
        path = self._file(name)
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def remove_partials(self, before: datetime) -> int:
        """A writer's cleanup never ran when its process was killed (SIGKILL, out of memory): its `.<name>.part`
        stays. One untouched since `before` is not being written any more."""
        return remove_stale_files(self.root, ".*.part", before)

    def exists(self, name: str) -> bool:
        return self._file(name).is_file()

    def size(self, name: str) -> int:
        return self._file(name).stat().st_size

    def path(self, name: str) -> Path | None:
        return self._file(name)


def export_storage(settings: Settings) -> ExportStorage:
    """The configured store (only the local folder so far)."""
    return LocalExportStorage(settings.data_dir / "exports")


def read_chunks(storage: ExportStorage, name: str) -> Iterator[bytes]:
    with storage.open_for_read(name) as handle:
        while chunk := handle.read(READ_CHUNK_BYTES):
            yield chunk
