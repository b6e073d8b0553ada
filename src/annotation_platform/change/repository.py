"""SQL for the change feed: entries written in the writer's transaction, read in commit-safe order.

`current_txid()` and `settled_txid_horizon()` compile per database. On PostgreSQL an entry carries its writing
transaction's id, and the feed reads only entries of transactions below the oldest one still in flight
(`pg_snapshot_xmin`): those have all committed or rolled back, so no entry can appear behind them later. SQLite
runs one writing transaction at a time and numbers `position` inside it, so position order is commit order
there and every entry is settled.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import BigInteger, Select, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from annotation_platform.core.pagination import Keyset, PageParams, encode_cursor, fetch_page
from annotation_platform.core.sql import insert_rows
from annotation_platform.models import Change

PG_CURRENT_TXID = "CAST(CAST(pg_current_xact_id() AS text) AS bigint)"
PG_SETTLED_HORIZON = "CAST(CAST(pg_snapshot_xmin(pg_current_snapshot()) AS text) AS bigint)"


class current_txid(FunctionElement[int]):  # noqa: N801 - an SQL function, named like one
    """The writing transaction's id on PostgreSQL; 0 on SQLite."""

    type = BigInteger()
    inherit_cache = True


class settled_txid_horizon(FunctionElement[int]):  # noqa: N801 - an SQL function, named like one
    """Entries with a txid below this belong to finished transactions; on SQLite all of them do."""

    type = BigInteger()
    inherit_cache = True


@compiles(current_txid)
def _current_txid(_element: current_txid, _compiler: SQLCompiler, **_kw: Any) -> str:
    return "0"


@compiles(current_txid, "postgresql")
def _current_txid_pg(_element: current_txid, _compiler: SQLCompiler, **_kw: Any) -> str:
    return PG_CURRENT_TXID


@compiles(settled_txid_horizon)
def _horizon(_element: settled_txid_horizon, _compiler: SQLCompiler, **_kw: Any) -> str:
    return str(2**63 - 1)


@compiles(settled_txid_horizon, "postgresql")
def _horizon_pg(_element: settled_txid_horizon, _compiler: SQLCompiler, **_kw: Any) -> str:
    return PG_SETTLED_HORIZON


CHANGE_COLUMNS = ("project_id", "resource_type", "resource_id", "container_id", "action", "version", "changed_by")


class ChangeRepository:
    keyset = Keyset(columns=(Change.txid, Change.position), kinds=(int, int))

    async def insert_many(self, session: AsyncSession, rows: list[dict[str, Any]]) -> None:
        """Rows of `CHANGE_COLUMNS` and `changed_at`: one statement (PostgreSQL) or one executemany."""
        await insert_rows(session, Change, rows, scopes=set(), constants={"txid": current_txid()})

    async def insert_from(self, session: AsyncSession, rows: Select[Any]) -> None:
        """Entries from a query whose columns are `CHANGE_COLUMNS` and `changed_at`, set-based."""
        columns = [*CHANGE_COLUMNS, "changed_at"]
        selected = rows.add_columns(current_txid())
        await session.execute(insert(Change).from_select([*columns, "txid"], selected))

    async def page(
        self, session: AsyncSession, project_id: uuid.UUID, params: PageParams
    ) -> tuple[list[Change], str, bool, int | None]:
        """A page of settled entries, the cursor to resume from (always one: the feed goes on), whether more
        entries are ready now, and the total if asked for."""
        statement = select(Change).where(Change.project_id == project_id, Change.txid < settled_txid_horizon())
        rows, cursor = await fetch_page(session, statement, self.keyset, params, lambda r: (r[0].txid, r[0].position))
        more = cursor is not None
        if cursor is None:
            cursor = encode_cursor((rows[-1][0].txid, rows[-1][0].position)) if rows else params.cursor
        # Before every entry: txids and positions start above 0.
        cursor = cursor or encode_cursor((0, 0))
        total = None
        if params.include_total:
            counted = select(func.count()).select_from(statement.subquery())
            total = int((await session.execute(counted)).scalar_one())
        return [row[0] for row in rows], cursor, more, total


change_repository = ChangeRepository()
