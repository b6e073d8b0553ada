"""Key rotation: `annotation-platform keys status` counts the stored values and files by the key that encrypted
them; `keys rotate` queues `keys.rotate`, which re-encrypts with the current key whatever an older key made.

The rotation reads each column in keyset batches of rows whose token names another key, and writes each batch
back in its own short transaction, only where the value did not change meanwhile (a concurrent write, made with
the current key, wins). Running it again, or after a crash, starts over and finds only what is left: it is
idempotent and resumable. A value whose key is no longer in the ring cannot be re-encrypted: it is counted as
`unreadable` and left as it is. Sealed files (snapshots, exports) are rewritten whole, under the same name.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from annotation_platform.config import Settings
from annotation_platform.core.crypto import DecryptionError, KeyRing
from annotation_platform.core.errors import AppError
from annotation_platform.core.field_crypto import export_file_context, snapshot_file_context
from annotation_platform.core.queue import create_celery
from annotation_platform.core.sealed_file import MAGIC, SealedReader, SealedWriter
from annotation_platform.data_export.storage import ExportStorage, export_storage
from annotation_platform.key_rotation.repository import TARGETS, Target, key_rotation_repository

logger = logging.getLogger(__name__)

ROTATE_TASK = "keys.rotate"
BATCH_ROWS = 500


@dataclass
class Rotated:
    """What one rotation run did, per column (`table.column`) and for files."""

    values: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)
    files: int = 0
    unreadable_files: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "unreadable": self.unreadable,
            "files": self.files,
            "unreadable_files": self.unreadable_files,
        }


def _file_context(kind: str, owner: uuid.UUID) -> bytes:
    return snapshot_file_context(owner) if kind == "snapshot" else export_file_context(owner)


def _file_key_id(storage: ExportStorage, name: str) -> str | None:
    """The key id of a sealed file's first chunk (every chunk is sealed by the same key); None when the file is
    plain or gone."""
    try:
        with storage.open_for_read(name) as source:
            if source.readline() != MAGIC:
                return None
            return source.read(64).decode("ascii", "replace").split(":")[2]
    except (FileNotFoundError, IndexError):
        return None


class KeyRotationService:
    async def status(self, session: AsyncSession, *, key_ring: KeyRing, settings: Settings) -> dict[str, Any]:
        """Counts by key id: `columns` (`table.column` -> key id -> values) and `files` (key id -> files)."""
        columns = {target.name: await key_rotation_repository.counts(session, target) for target in TARGETS}
        storage = export_storage(settings)
        files: dict[str, int] = {}
        for _, name, _ in await key_rotation_repository.sealed_files(session):
            key_id = _file_key_id(storage, name)
            if key_id is not None:
                files[key_id] = files.get(key_id, 0) + 1
        return {"current": key_ring.current_key_id, "ring": list(key_ring.key_ids), "columns": columns, "files": files}

    def enqueue(self, settings: Settings) -> None:
        create_celery(settings).send_task(ROTATE_TASK)

    async def rotate(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        key_ring: KeyRing,
        settings: Settings,
        batch: int = BATCH_ROWS,
    ) -> Rotated:
        done = Rotated()
        for target in TARGETS:
            await self._rotate_column(sessionmaker, target, key_ring, batch, done)
        async with sessionmaker() as session:
            files = await key_rotation_repository.sealed_files(session)
        storage = export_storage(settings)
        for kind, name, owner in files:
            self._rotate_file(storage, name, key_ring, _file_context(kind, owner), done)
        logger.info("key rotation to %s: %s", key_ring.current_key_id, done.as_dict())
        return done

    async def _rotate_column(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        target: Target,
        key_ring: KeyRing,
        batch: int,
        done: Rotated,
    ) -> None:
        after: tuple[Any, ...] | None = None
        while True:
            async with sessionmaker() as session, session.begin():
                rows = await key_rotation_repository.stale(session, target, key_ring.current_key_id, after, batch)
                if not rows:
                    return
                after = tuple(getattr(rows[-1], name) for name in target.key)
                changes = list(self._reencrypted(target, key_ring, rows, done))
                written = await key_rotation_repository.replace(session, target, changes)
            done.values[target.name] = done.values.get(target.name, 0) + written

    def _reencrypted(
        self, target: Target, key_ring: KeyRing, rows: list[Any], done: Rotated
    ) -> Iterator[dict[str, Any]]:
        for row in rows:
            keys = {name: getattr(row, name) for name in target.key}
            context = target.context.format(**keys).encode()
            try:
                plain = key_ring.decrypt(row.token, context=context)
            except DecryptionError:
                done.unreadable[target.name] = done.unreadable.get(target.name, 0) + 1
                continue
            yield {**keys, "old": row.token, "new": key_ring.encrypt(plain, context=context)}

    def _rotate_file(self, storage: ExportStorage, name: str, key_ring: KeyRing, context: bytes, done: Rotated) -> None:
        key_id = _file_key_id(storage, name)
        if key_id is None or key_id == key_ring.current_key_id:
            return
        try:
            with storage.open_for_read(name) as source, storage.open_for_write(name) as target:
                reader = SealedReader(source, key_ring, context)
                writer = SealedWriter(target, key_ring, context)
                while chunk := reader.read(1024 * 1024):
                    writer.write(chunk)
                writer.close()
        except (AppError, DecryptionError, ValueError, FileNotFoundError) as exc:
            logger.warning("key rotation: the sealed file %s was left as it is: %s", name, exc)
            done.unreadable_files += 1
            return
        done.files += 1


key_rotation_service = KeyRotationService()
