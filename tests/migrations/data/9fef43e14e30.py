"""jobs: adds two tables; users, projects, containers, items and annotations must come through untouched."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

USER = uuid.UUID("01900000-0000-7000-8000-000000000001")
PROJECT = uuid.UUID("01900000-0000-7000-8000-000000000002")
CONTAINER = uuid.UUID("01900000-0000-7000-8000-000000000003")
ITEM = uuid.UUID("01900000-0000-7000-8000-000000000004")
REPLY = uuid.UUID("01900000-0000-7000-8000-000000000005")
ANNOTATION = uuid.UUID("01900000-0000-7000-8000-000000000006")


def _id(connection: Connection, value: uuid.UUID) -> str:
    return str(value) if connection.dialect.name == "postgresql" else value.hex


def _insert(connection: Connection, table: str, values: dict[str, str], params: dict[str, Any]) -> None:
    """`values` maps each column to an SQL expression (a bound `:name`, a literal, CURRENT_TIMESTAMP)."""
    columns = ", ".join(values)
    connection.execute(text(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(values.values())})"), params)


def seed(connection: Connection) -> None:
    ids = {name: _id(connection, value) for name, value in globals().items() if isinstance(value, uuid.UUID)}
    now = "CURRENT_TIMESTAMP"
    user = {"is_active": "true", "is_superuser": "false", "is_verified": "false", "created_at": now, "updated_at": now}
    _insert(
        connection,
        "users",
        {"id": ":USER", "email": "'ana@example.org'", "username": "'ana'", "hashed_password": "'x'", **user},
        ids,
    )
    _insert(
        connection,
        "projects",
        {
            "id": ":PROJECT",
            "name": "'Debates'",
            "description": "''",
            "type": "'generic'",
            "settings": "'{}'",
            "sensitive": "false",
            "created_by": ":USER",
            "created_at": now,
            "updated_at": now,
        },
        ids,
    )
    _insert(
        connection,
        "memberships",
        {"project_id": ":PROJECT", "user_id": ":USER", "role": "'owner'", "added_at": now},
        ids,
    )
    _insert(
        connection,
        "containers",
        {
            "id": ":CONTAINER",
            "project_id": ":PROJECT",
            "name": "'VAC_R10'",
            "type": "'chat_room'",
            "item_count": "2",
            "created_at": now,
            "updated_at": now,
        },
        ids,
    )
    for item, external_id, parent, sequence in ((ITEM, "t1", None, 0), (REPLY, "t2", ITEM, 1)):
        _insert(
            connection,
            "items",
            {
                "id": ":id",
                "container_id": ":CONTAINER",
                "external_id": ":external_id",
                "content": "'hello there'",
                "metadata": """'{"user_id": "7"}'""",
                "sequence": ":sequence",
                "parent_id": ":parent",
                "created_at": now,
                "updated_at": now,
            },
            {
                **ids,
                "id": _id(connection, item),
                "external_id": external_id,
                "sequence": sequence,
                "parent": _id(connection, parent) if parent else None,
            },
        )
    _insert(
        connection,
        "annotations",
        {
            "id": ":ANNOTATION",
            "item_id": ":ITEM",
            "container_id": ":CONTAINER",
            "type": "'thread'",
            "data": """'{"thread_id": "5"}'""",
            "start_offset": "0",
            "end_offset": "5",
            "created_by": ":USER",
            "version": "1",
            "created_at": now,
            "updated_at": now,
        },
        ids,
    )


def verify(connection: Connection) -> None:
    ids = {name: _id(connection, value) for name, value in globals().items() if isinstance(value, uuid.UUID)}
    assert connection.execute(text("SELECT email, username FROM users")).all() == [("ana@example.org", "ana")]
    assert connection.execute(text("SELECT name, created_by FROM projects")).one()[0] == "Debates"
    assert connection.execute(text("SELECT role FROM memberships")).all() == [("owner",)]
    assert connection.execute(text("SELECT name, item_count FROM containers")).all() == [("VAC_R10", 2)]
    items = connection.execute(
        text("SELECT external_id, content, sequence, parent_id IS NULL FROM items ORDER BY sequence")
    ).all()
    assert items == [("t1", "hello there", 0, True), ("t2", "hello there", 1, False)]
    parent = connection.execute(text("SELECT parent_id FROM items WHERE external_id = 't2'")).scalar_one()
    assert str(parent).replace("-", "") == ids["ITEM"].replace("-", "")
    annotation = connection.execute(
        text("SELECT type, start_offset, end_offset, version FROM annotations WHERE id = :ANNOTATION"), ids
    ).one()
    assert tuple(annotation) == ("thread", 0, 5, 1)
    assert connection.execute(text("SELECT count(*) FROM jobs")).scalar_one() == 0
    assert connection.execute(text("SELECT count(*) FROM job_errors")).scalar_one() == 0
