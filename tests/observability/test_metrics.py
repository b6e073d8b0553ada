"""GET /metrics: request counts and latency by route template, in-flight requests, pool use, process CPU and
memory, and what a scrape reads (queue depth, jobs by kind and status, the newest backup)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from annotation_platform.core.types import utcnow
from annotation_platform.models.backup import Backup
from tests.conftest import Api, Team


async def scrape(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_requests_are_counted_by_route_template_never_by_raw_path(client: httpx.AsyncClient, api: Api) -> None:
    owner = await api.user()
    project = await api.project(owner)
    route = "/api/v1/projects/{project_id}"
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(f"/api/v1/projects/{project['id']}", headers=owner.headers)).status_code == 200
    missing = await client.get(f"/api/v1/projects/{uuid.uuid4()}", headers=owner.headers)
    assert missing.status_code == 404
    await client.get("/no/such/page")

    response = await client.get("/metrics")
    assert project["id"] not in response.text
    assert "/no/such/page" not in response.text
    after = await scrape(client)
    assert (
        value(after, "http_requests_total", method="GET", route=route, status="200")
        - value(before, "http_requests_total", method="GET", route=route, status="200")
        == 3
    )
    assert (
        value(after, "http_requests_total", method="GET", route=route, status="404")
        - value(before, "http_requests_total", method="GET", route=route, status="404")
        == 1
    )
    assert value(after, "http_requests_total", method="GET", route="<unmatched>", status="404") >= 1
    assert (
        value(after, "http_request_duration_seconds_count", method="GET", route=route)
        - value(before, "http_request_duration_seconds_count", method="GET", route=route)
        == 4
    )


async def test_in_flight_pool_and_process_metrics(client: httpx.AsyncClient) -> None:
    samples = await scrape(client)
    # The scrape itself is in flight while the numbers are taken.
    assert value(samples, "http_requests_in_flight") >= 1
    assert ("db_pool_checked_out_connections", ()) in samples
    assert ("db_pool_size_connections", ()) in samples
    assert value(samples, "process_resident_memory_bytes") > 0
    assert ("process_cpu_seconds_total", ()) in samples


async def test_queue_depth_and_jobs_by_kind_and_status(client: httpx.AsyncClient, team: Team, app: Any) -> None:
    """No worker runs here: an export queued through the API waits in the (embedded) broker's queue."""
    queue = app.state.settings.queue_name
    before = await scrape(client)
    response = await client.post(
        f"/api/v1/projects/{team.project['id']}/exports", json={"format": "jsonl"}, headers=team.owner.headers
    )
    assert response.status_code == 202, response.text
    after = await scrape(client)
    assert value(after, "annotation_jobs", kind="export", status="queued") == 1
    assert value(after, "celery_queue_length", queue=queue) - value(before, "celery_queue_length", queue=queue) == 1
    assert value(after, "annotation_scrape_errors", source="database") == 0


async def test_the_newest_backups_time(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    assert ("annotation_last_backup_timestamp_seconds", ()) not in await scrape(client)
    taken = utcnow() - timedelta(hours=30)
    async with AsyncSession(engine) as session, session.begin():
        for age, name in ((timedelta(0), "old.dump"), (timedelta(hours=-2), "older.dump")):
            session.add(Backup(backend="sqlite", filename=name, size_bytes=1, sha256="0" * 64, created_at=taken + age))
    newest = value(await scrape(client), "annotation_last_backup_timestamp_seconds")
    assert abs(newest - taken.timestamp()) < 1
