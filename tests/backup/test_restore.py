"""Backup -> wipe -> restore with the command an operator runs, on a database of the test's own.

PostgreSQL: a throwaway database named after TEST_POSTGRES_URL's plus a random suffix, dropped and created again
as the wipe, dropped at the end. SQLite: a file in a temporary DATA_DIR, deleted as the wipe.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from annotation_platform.main import create_app
from annotation_platform.models import Base
from tests.conftest import Api, in_ci, make_settings, migrate, postgres_url, serve
from tests.test_cli import run_cli

BACKUP_ID = re.compile(r"^backup ([0-9a-f-]{36}):", re.MULTILINE)


async def _admin() -> Any:
    parsed = make_url(postgres_url())
    return await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, password=parsed.password, database="postgres"
    )


async def _recreate(name: str) -> None:
    admin = await _admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


async def _drop(name: str) -> None:
    admin = await _admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


class Target:
    def __init__(self, backend: str, tmp: Path) -> None:
        self.backend = backend
        self.data_dir = tmp / "data"
        self.data_dir.mkdir()
        if backend == "sqlite":
            self.file = tmp / "db" / "annotation-platform.db"
            self.file.parent.mkdir()
            self.url = f"sqlite+aiosqlite:///{self.file}"
            self.name = ""
        else:
            parsed = make_url(postgres_url())
            self.name = f"{parsed.database}_{uuid.uuid4().hex[:8]}"[:63]
            self.url = parsed.set(database=self.name).render_as_string(hide_password=False)

    async def create(self) -> None:
        if self.backend == "postgresql":
            await _recreate(self.name)

    async def wipe(self) -> None:
        if self.backend == "postgresql":
            await _recreate(self.name)
        else:
            for suffix in ("", "-wal", "-shm"):
                self.file.with_name(self.file.name + suffix).unlink(missing_ok=True)
            assert not self.file.exists()

    def cli(self, *args: str) -> Any:
        return run_cli(self.data_dir, *args, DATABASE_URL=self.url)


@pytest.fixture
async def target(backend: str, tmp_path: Path) -> AsyncIterator[Target]:
    result = Target(backend, tmp_path)
    if backend == "postgresql":
        try:
            await result.create()
        except (OSError, asyncpg.PostgresError) as exc:
            if in_ci():
                pytest.fail(f"PostgreSQL is required under CI=true: {exc}")
            pytest.skip(f"PostgreSQL not reachable: {exc}")
    try:
        yield result
    finally:
        if backend == "postgresql":
            await _drop(result.name)


async def _snapshot(url: str) -> dict[str, Any]:
    """Every table's row count, and a few rows compared in full."""
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as connection:
            counts = {
                table.name: (await connection.execute(text(f"SELECT count(*) FROM {table.name}"))).scalar_one()
                for table in Base.metadata.sorted_tables
            }
            queries = {
                "users": "SELECT id, email, username, hashed_password, is_superuser FROM users ORDER BY email",
                "projects": "SELECT id, name, created_by FROM projects",
                "memberships": "SELECT project_id, user_id, role FROM memberships ORDER BY role",
                "items": "SELECT id, external_id, content, sequence, metadata FROM items ORDER BY sequence",
                "annotations": "SELECT id, item_id, type, data, created_by, version FROM annotations ORDER BY id",
                "alembic_version": "SELECT version_num FROM alembic_version",
            }
            rows = {name: [tuple(row) for row in await connection.execute(text(sql))] for name, sql in queries.items()}
    finally:
        await engine.dispose()
    return {"counts": counts, "rows": rows}


async def _fill(target: Target) -> None:
    """Users, a project with a member, a container, items and annotations, made through the API."""
    app = create_app(make_settings(target.url, target.data_dir))
    async with serve(app) as http:
        api = Api(http, app.state.engine)
        owner = await api.user("owner")
        annotator = await api.user("annotator")
        project = await api.project(owner, name="Debates")
        await api.add_member(project, owner, annotator, "annotator")
        container = await api.container(project, owner, name="VAC_R10")
        items = await api.items(container, owner, 6, metadata={"user_id": "7"})
        for index, item in enumerate(items[:4]):
            await api.annotate(item, annotator, data={"thread_id": str(index % 2)})
        await api.annotate(items[0], owner, type="sentiment", data={"value": "positive"})


async def test_backup_wipe_restore_gives_back_the_same_rows(target: Target) -> None:
    await asyncio.to_thread(migrate, target.url)
    await _fill(target)
    before = await _snapshot(target.url)
    assert before["counts"]["items"] == 6
    assert before["counts"]["annotations"] == 5

    created = target.cli("backup", "create")
    assert created.returncode == 0, created.stderr
    match = BACKUP_ID.search(created.stdout)
    assert match, created.stdout
    backup_id = match.group(1)
    assert backup_id in target.cli("backup", "list").stdout
    verified = target.cli("backup", "verify", backup_id)
    assert verified.returncode == 0, verified.stderr

    refused = target.cli("backup", "restore", backup_id)
    assert refused.returncode == 1, refused
    assert "not empty" in refused.stderr

    await target.wipe()
    restored = target.cli("backup", "restore", backup_id)
    assert restored.returncode == 0, f"{restored.stdout}\n{restored.stderr}"

    after = await _snapshot(target.url)
    assert after == before
    # The restored database works as one: the service starts on it and serves its data.
    app = create_app(make_settings(target.url, target.data_dir))
    async with serve(app) as http:
        login = await http.post(
            "/api/v1/auth/jwt/login",
            data={"username": "annotator@example.org", "password": "a perfectly fine passphrase"},
        )
        assert login.status_code == 200, login.text
        # The change feed is whole and settled: restored entries do not wait on the old server's transactions.
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        (project,) = (await http.get("/api/v1/projects", headers=headers)).json()["items"]
        feed = await http.get(f"/api/v1/projects/{project['id']}/changes", headers=headers)
        assert len(feed.json()["items"]) == 1 + 6 + 5, feed.text
    if target.backend == "postgresql":
        engine = create_async_engine(target.url, poolclass=NullPool)
        async with engine.connect() as connection:
            unsettled = (await connection.execute(text("SELECT count(*) FROM changes WHERE txid <> 0"))).scalar_one()
        await engine.dispose()
        assert unsettled == 0


async def test_restore_of_an_unknown_id_or_a_damaged_file_exits_1_and_touches_nothing(target: Target) -> None:
    garbage = target.data_dir / "garbage.pgdump"
    garbage.write_bytes(b"PGDMP but not really a dump")

    unknown = target.cli("backup", "restore", str(uuid.uuid4()))
    damaged = target.cli("backup", "restore", str(garbage))

    assert unknown.returncode == 1
    assert "No backup file with id" in unknown.stderr
    assert damaged.returncode == 1
    assert "garbage.pgdump" in damaged.stderr
    if target.backend == "sqlite":
        assert not target.file.exists()
