"""`/admin/backups` and the backup job, run in the test process (`run_backup`, what the `backups.run` task calls).

Backups go to the session's DATA_DIR/backups, emptied before each test.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from annotation_platform.backup.dump import EXTENSIONS, read_checksum_file
from annotation_platform.backup.service import BackupCorrupt, backup_service, run_backup
from annotation_platform.config import Settings
from annotation_platform.core.queue import BACKUP_TASK, create_celery
from tests.conftest import Actor, Api, problem

URL = "/api/v1/admin/backups"


@pytest.fixture
async def backups(settings: Settings) -> AsyncIterator[Path]:
    directory = settings.resolved_backup_dir
    shutil.rmtree(directory, ignore_errors=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _half_written(path: Path, age_seconds: float) -> Path:
    """A dump's temporary file as a killed worker leaves it, last written `age_seconds` ago."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"half a dump")
    written = time.time() - age_seconds
    os.utime(path, (written, written))
    return path


def _names(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()} if directory.exists() else set()


async def _backup_job(app: Any, client: httpx.AsyncClient, admin: Actor, settings: Settings) -> dict[str, Any]:
    response = await client.post(URL, headers=admin.headers)
    assert response.status_code == 202, response.text
    await run_backup(app.state.sessionmaker, uuid.UUID(response.json()["id"]), settings=settings)
    job = await client.get(f"/api/v1/jobs/{response.json()['id']}", headers=admin.headers)
    return dict(job.json())


async def test_anonymous_callers_get_401_and_non_superusers_403(client: httpx.AsyncClient, api: Api) -> None:
    user = await api.user("ana")

    problem(await client.get(URL), 401)
    problem(await client.post(URL), 401)
    problem(await client.get(URL, headers=user.headers), 403, "forbidden")
    problem(await client.post(URL, headers=user.headers), 403, "forbidden")


async def test_a_superuser_gets_a_queued_backup_job_with_its_location(
    client: httpx.AsyncClient, api: Api, backups: Path
) -> None:
    admin = await api.user("root", superuser=True)

    response = await client.post(URL, headers=admin.headers, params={})

    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["kind"], job["status"], job["params"]) == ("backup", "queued", {"trigger": "api"})
    assert response.headers["location"] == f"/api/v1/jobs/{job['id']}"
    again = await client.post(URL, headers={**admin.headers, "Idempotency-Key": "k1"})
    same = await client.post(URL, headers={**admin.headers, "Idempotency-Key": "k1"})
    assert again.json()["id"] == same.json()["id"] != job["id"]


async def test_the_job_writes_a_backup_with_its_checksum_size_and_time_recorded(
    app: Any, client: httpx.AsyncClient, api: Api, settings: Settings, backups: Path
) -> None:
    admin = await api.user("root", superuser=True)

    job = await _backup_job(app, client, admin, settings)

    assert job["status"] == "succeeded", job
    listed = (await client.get(URL, headers=admin.headers)).json()["items"]
    assert len(listed) == 1
    backup = listed[0]
    path = backups / backup["filename"]
    content = path.read_bytes()
    assert backup["size_bytes"] == len(content) > 0
    assert backup["sha256"] == hashlib.sha256(content).hexdigest() == read_checksum_file(path)
    assert backup["backend"] == ("sqlite" if settings.is_sqlite else "postgresql")
    assert path.suffix == "." + EXTENSIONS[backup["backend"]]
    assert (backup["job_id"], backup["created_by"]) == (job["id"], admin.id)
    assert job["result"]["backup_id"] == backup["id"]
    assert job["result"]["sha256"] == backup["sha256"]
    assert backup["created_at"]
    assert _names(backups) == {path.name, path.name + ".sha256"}


async def test_retention_keeps_the_newest_n_rows_and_files(
    app: Any, client: httpx.AsyncClient, api: Api, settings: Settings, backups: Path
) -> None:
    admin = await api.user("root", superuser=True)
    keep_two = settings.model_copy(update={"backup_retention_count": 2})

    jobs = [await _backup_job(app, client, admin, keep_two) for _ in range(4)]

    assert [job["status"] for job in jobs] == ["succeeded"] * 4
    page = await client.get(URL, headers=admin.headers, params={"limit": 1, "include_total": True})
    assert page.json()["total"] == 2
    assert page.json()["next_cursor"]
    listed = (await client.get(URL, headers=admin.headers)).json()["items"]
    assert [backup["id"] for backup in listed] == [job["result"]["backup_id"] for job in jobs[2:]]
    kept = {backup["filename"] for backup in listed}
    assert _names(backups) == kept | {name + ".sha256" for name in kept}
    assert jobs[3]["result"]["deleted_by_retention"] == 1


async def test_a_killed_workers_half_written_dump_is_removed_by_a_later_backup(
    app: Any, client: httpx.AsyncClient, api: Api, settings: Settings, backups: Path
) -> None:
    admin = await api.user("root", superuser=True)
    stale = _half_written(backups / "annotation-platform-old.dump.partial", age_seconds=2 * 24 * 3600)
    fresh = _half_written(backups / "annotation-platform-now.dump.partial", age_seconds=0)

    job = await _backup_job(app, client, admin, settings)

    assert job["status"] == "succeeded", job
    assert not stale.exists()
    assert fresh.exists(), "a partial file still being written (recent) is left alone"


async def test_verify_accepts_an_intact_backup_and_detects_a_corrupted_one(
    app: Any, client: httpx.AsyncClient, api: Api, settings: Settings, backups: Path
) -> None:
    admin = await api.user("root", superuser=True)
    job = await _backup_job(app, client, admin, settings)
    backup_id = job["result"]["backup_id"]
    path = backups / job["result"]["filename"]

    verified = await backup_service.verify(settings, backup_id)
    assert verified.sha256 == job["result"]["sha256"]
    assert verified.recorded_in == sorted([path.name + ".sha256", "the backups table"])

    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0xFF
    path.write_bytes(bytes(content))
    with pytest.raises(BackupCorrupt, match="SHA-256"):
        await backup_service.verify(settings, backup_id)

    # Nothing recorded to compare with: the format check still catches a damaged file.
    stray = backups / "stray.bin"
    stray.write_bytes(path.read_bytes()[: len(content) // 3])
    with pytest.raises(BackupCorrupt):
        await backup_service.verify(settings, str(stray))


async def test_a_missing_pg_dump_fails_the_job_with_a_clear_message(
    app: Any,
    client: httpx.AsyncClient,
    api: Api,
    settings: Settings,
    backups: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if settings.is_sqlite:
        pytest.skip("pg_dump is for PostgreSQL")
    admin = await api.user("root", superuser=True)
    monkeypatch.setenv("PATH", "/nonexistent")

    job = await _backup_job(app, client, admin, settings)

    assert job["status"] == "failed"
    assert "pg_dump not found" in job["error_message"]
    assert (await client.get(URL, headers=admin.headers)).json()["items"] == []
    assert _names(backups) == set()


def test_beat_takes_a_backup_every_backup_schedule_hours_unless_zero(settings: Settings) -> None:
    daily = create_celery(settings.model_copy(update={"backup_schedule_hours": 24})).conf.beat_schedule
    never = create_celery(settings.model_copy(update={"backup_schedule_hours": 0})).conf.beat_schedule

    assert daily["backup-database"]["task"] == BACKUP_TASK
    assert daily["backup-database"]["schedule"].total_seconds() == 24 * 3600
    assert "backup-database" not in never
