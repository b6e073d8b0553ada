"""A real worker process runs `backups.run`: sent through the API, and as beat sends it (no job id)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.backup.dump import read_checksum_file, sha256_of
from tests.workers.test_worker import Stack, _count, _sleep, stack

__all__ = ["stack"]


async def test_a_worker_takes_a_backup_asked_for_through_the_api(stack: Stack) -> None:
    stack.start_worker()
    admin = await stack.api.user("root", superuser=True)

    response = await stack.http.post("/api/v1/admin/backups", headers=admin.headers)
    assert response.status_code == 202, response.text
    job = await stack.wait_for(response.json()["id"], admin, statuses=("succeeded", "failed"))

    assert job["status"] == "succeeded", job
    path = stack.settings.resolved_backup_dir / job["result"]["filename"]
    assert sha256_of(path) == job["result"]["sha256"] == read_checksum_file(path)
    listed = (await stack.http.get("/api/v1/admin/backups", headers=admin.headers)).json()["items"]
    assert [backup["id"] for backup in listed] == [job["result"]["backup_id"]]


async def test_the_scheduled_task_creates_its_own_job_and_backup(stack: Stack) -> None:
    stack.start_worker()
    stack.app.state.queue.send_task("backups.run")

    deadline = time.monotonic() + 60
    while await _count(stack, "backups") == 0:
        assert time.monotonic() < deadline, "\n".join(worker.output() for worker in stack.workers)
        await _sleep(0.1)

    assert await _count(stack, "jobs") == 1
    files = [p for p in stack.settings.resolved_backup_dir.iterdir() if not p.name.endswith(".sha256")]
    assert len(files) == 1


async def test_a_running_backup_is_cancelled_within_seconds_and_leaves_no_file(
    stack: Stack, backend: str, engine: AsyncEngine
) -> None:
    """pg_dump is held at its start by a lock another transaction keeps, so the cancel meets it running."""
    if backend != "postgresql":
        pytest.skip("only pg_dump can be held mid-dump; the SQLite copy is covered in test_dump_stop")
    stack.start_worker()
    admin = await stack.api.user("root", superuser=True)
    async with engine.connect() as blocker:
        await blocker.execute(text("BEGIN"))
        await blocker.execute(text("LOCK TABLE container_schema_versions IN ACCESS EXCLUSIVE MODE"))
        response = await stack.http.post("/api/v1/admin/backups", headers=admin.headers)
        job_id = response.json()["id"]
        await stack.wait_for(job_id, admin, statuses=("running",), within=30)
        await _sleep(1.5)

        cancel = await stack.http.post(f"/api/v1/jobs/{job_id}/cancel", headers=admin.headers)
        asked = time.monotonic()
        job = await stack.wait_for(job_id, admin, statuses=("cancelled", "succeeded", "failed"), within=10)
        waited = time.monotonic() - asked
        await blocker.execute(text("ROLLBACK"))

    assert cancel.status_code == 200, cancel.text
    assert job["status"] == "cancelled", job
    assert waited < 3
    backup_dir = stack.settings.resolved_backup_dir
    assert not backup_dir.exists() or list(backup_dir.iterdir()) == []
    assert await _count(stack, "backups") == 0
