"""Small SQL building blocks shared by the repositories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ARRAY, Row, Select, bindparam, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import TypeEngine

IN_LIST_CHUNK = 1000
# Below this many rows a plain INSERT (an executemany) is cheaper than building the arrays' statement.
UNNEST_MIN_ROWS = 100


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


async def insert_rows(
    session: AsyncSession,
    model: Any,
    rows: Sequence[dict[str, Any]],
    *,
    scopes: set[str],
    constants: dict[str, Any] | None = None,
) -> None:
    """Rows of the ORM class `model` (keyed by attribute name), all or none, in one statement on PostgreSQL.

    There the values go as one array a column, `INSERT ... SELECT ... FROM unnest(...)`: one round trip and
    one execution for up to 10,000 rows, where an executemany runs the statement once a row. `constants` are
    SQL expressions of every row (such as the transaction id). Rows must name the same columns, every column
    with a Python-side default included (else, on SQLite, and for fewer than `UNNEST_MIN_ROWS`, an
    executemany). The statement names no key the cache could read, so the caller says which cache `scopes` it
    writes (core/cache.py).
    """
    from annotation_platform.core.cache import mark_written

    if not rows:
        return
    keys = list(rows[0])
    attributes = model.__mapper__.column_attrs
    columns = [attributes[key].columns[0] for key in keys]
    defaulted = {column.name for column in model.__table__.columns if column.default is not None}
    uniform = all(len(row) == len(keys) for row in rows) and defaulted <= {column.name for column in columns}
    if session.get_bind().dialect.name != "postgresql" or not uniform or len(rows) < UNNEST_MIN_ROWS:
        statement = insert(model).values(constants) if constants else insert(model)
        await session.execute(statement, list(rows))
        return
    arrays = [
        bindparam(None, [row[key] for row in rows], type_=ARRAY(column.type))
        for key, column in zip(keys, columns, strict=True)
    ]
    unnested = func.unnest(*arrays).table_valued(*(column.name for column in columns)).render_derived("new_rows")
    selected = select(*unnested.c, *(constants or {}).values())
    names = [column.name for column in columns] + list(constants or {})
    statement = insert(model.__table__).from_select(names, selected)
    connection = await session.connection()
    await connection.execute(statement)
    mark_written(session, scopes)
