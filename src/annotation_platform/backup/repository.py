"""SQL for backups: the list in creation order, lookups, retention's sweep, and whether a database is empty."""

from __future__ import annotations

import uuid

from sqlalchemy import delete, func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from annotation_platform.core.pagination import Keyset, PageParams, fetch_page
from annotation_platform.models import Backup


class BackupRepository:
    keyset = Keyset(columns=(Backup.id,), kinds=(uuid.UUID,))

    async def add(self, session: AsyncSession, backup: Backup) -> None:
        session.add(backup)
        await session.flush()

    async def get(self, session: AsyncSession, backup_id: uuid.UUID) -> Backup | None:
        return await session.get(Backup, backup_id)

    async def by_filename(self, session: AsyncSession, filename: str) -> Backup | None:
        return (await session.execute(select(Backup).where(Backup.filename == filename))).scalar_one_or_none()

    async def page(self, session: AsyncSession, params: PageParams) -> tuple[list[Backup], str | None]:
        rows, cursor = await fetch_page(session, select(Backup), self.keyset, params, lambda r: (r[0].id,))
        return [row[0] for row in rows], cursor

    async def all(self, session: AsyncSession) -> list[Backup]:
        return list((await session.execute(select(Backup).order_by(Backup.id))).scalars())

    async def count(self, session: AsyncSession) -> int:
        return int((await session.execute(select(func.count()).select_from(Backup))).scalar_one())

    async def delete_all_but_newest(self, session: AsyncSession, keep: int) -> list[Backup]:
        """Deletes the rows of every backup but the newest `keep` (ids are UUIDv7: creation order); returns them."""
        newest = select(Backup.id).order_by(Backup.created_at.desc(), Backup.id.desc()).limit(keep)
        old = list((await session.execute(select(Backup).where(Backup.id.not_in(newest)))).scalars())
        if old:
            await session.execute(delete(Backup).where(Backup.id.in_([backup.id for backup in old])))
        return old

    async def user_table_count(self, connection: AsyncConnection) -> int:
        """Tables outside the system schemas (PostgreSQL) or sqlite_master's tables (SQLite)."""
        if connection.dialect.name == "postgresql":
            statement = text(
                "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            )
        else:
            statement = text("SELECT count(*) FROM sqlite_master WHERE type = 'table'")
        return int((await connection.execute(statement)).scalar_one())

    async def settle_change_feed(self, connection: AsyncConnection) -> None:
        """PostgreSQL: every restored change-feed entry is settled; txid 0 orders them before every new entry (a
        backup made before the feed existed has no `changes` table)."""
        if (await connection.execute(text("SELECT to_regclass('changes')"))).scalar_one() is not None:
            await connection.execute(text("UPDATE changes SET txid = 0"))


backup_repository = BackupRepository()
