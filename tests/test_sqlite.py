"""The embedded default: SQLite in WAL mode with a busy timeout, so the API and another writer (a worker, a
script) can write at the same time without ever failing with "database is locked".

These tests build their own app on a fresh SQLite file, so they run once, whatever `--backend` says.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.config import Settings
from annotation_platform.main import create_app
from tests.conftest import Api, make_settings, prepare_database

BUSY_TIMEOUT_MS = 30_000


@dataclass
class SqliteApp:
    api: Api
    engine: AsyncEngine
    settings: Settings
    path: Path


@pytest.fixture
async def sqlite_app(tmp_path: Path) -> AsyncIterator[SqliteApp]:
    url = await asyncio.to_thread(prepare_database, "sqlite", tmp_path)
    settings = make_settings(url, tmp_path / "data", sqlite_busy_timeout_ms=BUSY_TIMEOUT_MS)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield SqliteApp(
            api=Api(client, app.state.engine),
            engine=app.state.engine,
            settings=settings,
            path=Path(str(make_url(url).database)),
        )
    await app.state.engine.dispose()


async def test_connections_use_wal_a_busy_timeout_and_foreign_keys(sqlite_app: SqliteApp) -> None:
    async with sqlite_app.engine.connect() as connection:
        journal_mode = (await connection.execute(text("PRAGMA journal_mode"))).scalar_one()
        busy_timeout = (await connection.execute(text("PRAGMA busy_timeout"))).scalar_one()
        foreign_keys = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()

    assert journal_mode.lower() == "wal"
    assert busy_timeout == BUSY_TIMEOUT_MS
    assert foreign_keys == 1


async def test_the_database_file_stays_in_wal_mode_for_other_programs(sqlite_app: SqliteApp) -> None:
    """WAL is a property of the file: a worker or a script opening it gets WAL too."""
    await sqlite_app.api.user("ana")

    with sqlite3.connect(sqlite_app.path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal"
    other.close()


class OtherWriter(threading.Thread):
    """Another program writing into the same SQLite file: short transactions that each hold the write lock for
    a few milliseconds, until told to stop (and at least `minimum` of them)."""

    def __init__(self, path: Path, minimum: int) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.minimum = minimum
        self.committed = 0
        self.error: BaseException | None = None
        self.stop = threading.Event()
        self.started_writing = threading.Event()

    def run(self) -> None:
        try:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            try:
                connection.execute("CREATE TABLE IF NOT EXISTS worker_rows (n INTEGER PRIMARY KEY, note TEXT)")
                while self.committed < self.minimum or not self.stop.is_set():
                    connection.execute("BEGIN IMMEDIATE")  # takes the write lock now, as a real writer does
                    connection.execute("INSERT INTO worker_rows (note) VALUES (?)", (f"row {self.committed}",))
                    time.sleep(0.003)
                    connection.execute("COMMIT")
                    self.committed += 1
                    self.started_writing.set()
                    time.sleep(0.002)  # a real worker does other things between writes
            finally:
                connection.close()
        except BaseException as exc:  # reported by the test
            self.error = exc
            self.started_writing.set()


async def test_concurrent_writers_never_fail_with_database_is_locked(sqlite_app: SqliteApp) -> None:
    api = sqlite_app.api
    owner = await api.user("owner")
    annotator = await api.user("annotator")
    project = await api.project(owner, name="Concurrency")
    await api.add_member(project, owner, annotator, "annotator")
    container = await api.container(project, owner, name="room")
    items = await api.items(container, owner, 10)

    writer = OtherWriter(sqlite_app.path, minimum=60)
    writer.start()
    try:
        assert await asyncio.to_thread(writer.started_writing.wait, 10)
        requests = [
            api.client.post(
                f"/api/v1/containers/{container['id']}/items",
                json={"external_id": f"new-{index}", "content": f"concurrent turn {index}"},
                headers=owner.headers,
            )
            for index in range(10)
        ] + [
            api.client.post(
                f"/api/v1/items/{item['id']}/annotations",
                json={"type": "thread", "data": {"thread_id": str(index)}},
                headers=annotator.headers,
            )
            for index, item in enumerate(items)
        ]
        responses = await asyncio.gather(*requests)
    finally:
        writer.stop.set()
        await asyncio.to_thread(writer.join, 60)

    assert not writer.is_alive()
    assert writer.error is None, f"the other writer failed: {writer.error!r}"
    assert [response.status_code for response in responses] == [201] * 20, [
        response.text for response in responses if response.status_code != 201
    ]

    listed = await api.client.get(
        f"/api/v1/containers/{container['id']}/items",
        params={"limit": 500, "include_total": "true"},
        headers=owner.headers,
    )
    assert listed.status_code == 200, listed.text
    external_ids = [item["external_id"] for item in listed.json()["items"]]
    assert sorted(external_ids) == sorted([item["external_id"] for item in items] + [f"new-{i}" for i in range(10)])
    assert listed.json()["total"] == 20
    annotations = await api.client.get(
        f"/api/v1/containers/{container['id']}/annotations",
        params={"limit": 500, "include_total": "true"},
        headers=owner.headers,
    )
    assert annotations.status_code == 200, annotations.text
    assert len(annotations.json()["items"]) == annotations.json()["total"] == 10
    with sqlite3.connect(sqlite_app.path) as check:
        assert check.execute("SELECT count(*) FROM worker_rows").fetchone()[0] == writer.committed
    check.close()
    assert writer.committed >= 60
