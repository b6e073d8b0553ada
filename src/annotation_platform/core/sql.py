"""Small SQL building blocks shared by the repositories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ARRAY, Row, Select, bindparam, func
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

IN_LIST_CHUNK = 1000


async def rows_where_in(
    session: AsyncSession,
    statement: Select[Any],
    column: Any,
    values: Sequence[Any],
    element_type: TypeEngine[Any],
) -> list[Row[Any]]:
    """The rows of `statement` whose `column` is one of `values`, however many values there are.

    On PostgreSQL the values travel as one array joined through `unnest()`. A long `IN (...)` list is slow
    there on a freshly loaded table: without statistics yet the planner scans the table and compares every row
    with every element (measured: 10,000 look-ups against 20,000 items took 2 s). SQLite turns an `IN` list
    into an index probe, so there the values go in chunks below its bound-parameter limit.
    """
    if not values:
        return []
    if session.get_bind().dialect.name == "postgresql":
        wanted = (
            func.unnest(bindparam(None, list(values), type_=ARRAY(element_type)))
            .table_valued("value")
            .render_derived("wanted")
        )
        return list((await session.execute(statement.join(wanted, column == wanted.c.value))).all())
    rows: list[Row[Any]] = []
    for start in range(0, len(values), IN_LIST_CHUNK):
        chunk = statement.where(column.in_(values[start : start + IN_LIST_CHUNK]))
        rows.extend((await session.execute(chunk)).all())
    return rows
