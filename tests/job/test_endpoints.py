"""The jobs API: the caller's jobs only, cancel, retry, Idempotency-Key."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.data_import.service import execute_import
from annotation_platform.job.service import job_service
from tests.conftest import Api, Team, problem
from tests.data_import.helpers import ROOM, chat_csv, counts, run, start, upload


async def _job(client: httpx.AsyncClient, team: Team, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_a_job_has_the_documented_shape(client: httpx.AsyncClient, team: Team) -> None:
    job = await _job(client, team, await start(client, team.container, team.owner, chat_csv(ROOM)))

    assert {"id", "kind", "status", "progress", "params", "result", "error_count", "created_by", "created_at"} <= set(
        job
    )
    assert job["kind"] == "import"
    assert job["progress"] == {"done": 0, "total": 0}
    assert job["created_by"] == team.owner.id
    assert job["params"]["format"] == "csv"
    assert job["params"]["annotator"] == team.owner.username
    assert job["params"]["on_error"] == "abort"
    assert job["started_at"] is None


async def test_others_jobs_are_not_found(client: httpx.AsyncClient, team: Team) -> None:
    job_id = await start(client, team.container, team.owner, chat_csv(ROOM))

    for path in ("", "/errors"):
        problem(await client.get(f"/api/v1/jobs/{job_id}{path}", headers=team.manager.headers), 404, "not_found")
    for action in ("cancel", "retry"):
        problem(await client.post(f"/api/v1/jobs/{job_id}/{action}", headers=team.manager.headers), 404, "not_found")
    problem(await client.get("/api/v1/jobs/not-an-id", headers=team.owner.headers), 404, "not_found")
    problem(await client.get(f"/api/v1/jobs/{uuid.uuid4()}", headers=team.owner.headers), 404, "not_found")
    assert (await client.get("/api/v1/jobs", headers=team.manager.headers)).json()["items"] == []
    problem(await client.get("/api/v1/jobs"), 401)


async def test_the_list_is_the_callers_jobs_in_creation_order_page_by_page(
    client: httpx.AsyncClient, team: Team
) -> None:
    ids = [await start(client, team.container, team.owner, chat_csv(ROOM)) for _ in range(3)]

    first = await client.get("/api/v1/jobs?limit=2&include_total=true", headers=team.owner.headers)
    second = await client.get(f"/api/v1/jobs?limit=2&cursor={first.json()['next_cursor']}", headers=team.owner.headers)

    assert [job["id"] for job in first.json()["items"]] == ids[:2]
    assert first.json()["total"] == 3
    assert 'rel="next"' in first.headers["Link"]
    assert [job["id"] for job in second.json()["items"]] == ids[2:]
    assert second.json()["next_cursor"] is None


async def test_the_same_idempotency_key_gives_the_same_job(client: httpx.AsyncClient, team: Team) -> None:
    key = {"Idempotency-Key": "import-VAC_R10-1"}
    first = await upload(client, team.container, team.owner, chat_csv(ROOM), headers=key)
    again = await upload(client, team.container, team.owner, chat_csv(ROOM), headers=key)
    other_user = await upload(client, team.container, team.manager, chat_csv(ROOM), headers=key)

    assert first.status_code == again.status_code == other_user.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert other_user.json()["id"] != first.json()["id"], "keys are per user"
    listed = (await client.get("/api/v1/jobs", headers=team.owner.headers)).json()["items"]
    assert [job["id"] for job in listed] == [first.json()["id"]]


async def test_cancelling_a_queued_job_cancels_it_at_once(app: Any, client: httpx.AsyncClient, team: Team) -> None:
    job_id = await start(client, team.container, team.owner, chat_csv(ROOM))

    response = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=team.owner.headers)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["finished_at"] is not None
    job = await run(app, client, team.owner, job_id)  # the message arrives anyway: nothing happens
    assert job["status"] == "cancelled"
    problem(await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=team.owner.headers), 409, "job_not_cancellable")


async def test_a_running_job_asked_to_cancel_stops_and_writes_nothing(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    room = await api.container(team.project, team.owner)
    job_id = await start(client, room, team.owner, chat_csv(ROOM))
    async with app.state.sessionmaker() as session, session.begin():
        claimed = await job_service.claim(session, job_id=uuid.UUID(job_id))
    assert claimed is not None

    response = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=team.owner.headers)
    assert response.json()["status"] == "running"
    assert response.json()["cancel_requested"] is True
    await execute_import(app.state.sessionmaker, claimed, app.state.settings)

    job = await _job(client, team, job_id)
    assert job["status"] == "cancelled"
    assert await counts(engine, room["id"]) == (5, 0)


async def test_a_failed_job_can_be_retried_and_a_finished_one_cannot(
    app: Any, client: httpx.AsyncClient, team: Team
) -> None:
    bad = chat_csv([*ROOM, ("1", "VAC_R10_001", "again", "", "1")])
    job_id = await start(client, team.container, team.owner, bad)
    failed = await run(app, client, team.owner, job_id)
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1

    retried = await client.post(f"/api/v1/jobs/{job_id}/retry", headers=team.owner.headers)

    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "queued"
    assert retried.json()["error_count"] == 0
    assert (await client.get(f"/api/v1/jobs/{job_id}/errors", headers=team.owner.headers)).json()["items"] == []
    again = await run(app, client, team.owner, job_id)
    assert again["status"] == "failed"
    assert again["attempts"] == 2
    assert again["error_count"] == 1

    ok_id = await start(client, team.container, team.owner, chat_csv(ROOM))
    assert (await run(app, client, team.owner, ok_id))["status"] == "succeeded"
    problem(await client.post(f"/api/v1/jobs/{ok_id}/retry", headers=team.owner.headers), 409, "job_not_retryable")
    queued_id = await start(client, team.container, team.owner, chat_csv(ROOM))
    problem(await client.post(f"/api/v1/jobs/{queued_id}/retry", headers=team.owner.headers), 409, "job_not_retryable")


async def test_a_cancelled_import_retried_runs_to_the_end(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    room = await api.container(team.project, team.owner)
    items, annotations = await counts(engine, room["id"])
    job_id = await start(client, room, team.owner, chat_csv(ROOM))
    cancelled = await client.post(f"/api/v1/jobs/{job_id}/cancel", headers=team.owner.headers)
    assert cancelled.json()["status"] == "cancelled"

    retried = await client.post(f"/api/v1/jobs/{job_id}/retry", headers=team.owner.headers)

    assert retried.status_code == 202, retried.text
    assert retried.json()["status"] == "queued"
    assert retried.json()["cancel_requested"] is False
    job = await run(app, client, team.owner, job_id)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 1
    labelled = sum(1 for row in ROOM if row[4] != "null")
    assert await counts(engine, room["id"]) == (items + len(ROOM), annotations + labelled)


async def test_the_reaper_fails_running_jobs_whose_worker_went_silent(
    app: Any, client: httpx.AsyncClient, team: Team
) -> None:
    job_id = await start(client, team.container, team.owner, chat_csv(ROOM))
    async with app.state.sessionmaker() as session, session.begin():
        await job_service.claim(session, job_id=uuid.UUID(job_id))

    settings = app.state.settings
    async with app.state.sessionmaker() as session, session.begin():
        assert await job_service.reap(session, settings=settings) == (0, 0)
    await asyncio.sleep(1.1)
    silent = settings.model_copy(update={"job_heartbeat_timeout_seconds": 1})
    async with app.state.sessionmaker() as session, session.begin():
        assert await job_service.reap(session, settings=silent) == (1, 0)

    job = await _job(client, team, job_id)
    assert job["status"] == "failed"
    assert job["error_message"].startswith("worker lost")
    assert (await client.post(f"/api/v1/jobs/{job_id}/retry", headers=team.owner.headers)).status_code == 202


async def test_the_reaper_sends_again_the_task_of_a_job_queued_too_long(
    app: Any, client: httpx.AsyncClient, team: Team
) -> None:
    """The broker lost the message (or was down when the job was created): the job would stay queued forever."""
    job_id = await start(client, team.container, team.owner, chat_csv(ROOM))
    sent: list[tuple[str, Any]] = []
    queue = app.state.queue
    original = queue.send_task
    queue.send_task = lambda name, args=None, kwargs=None: sent.append((name, args))
    patient = app.state.settings
    impatient = patient.model_copy(update={"job_resend_after_seconds": 1})
    try:
        async with app.state.sessionmaker() as session, session.begin():
            assert await job_service.reap(session, settings=patient) == (0, 0)
        await asyncio.sleep(1.1)
        async with app.state.sessionmaker() as session, session.begin():
            assert await job_service.reap(session, settings=impatient) == (0, 1)
        async with app.state.sessionmaker() as session, session.begin():
            assert await job_service.reap(session, settings=impatient) == (0, 0), "sent again only once a period"
    finally:
        queue.send_task = original
    assert sent == [("imports.run", [job_id])]
    assert (await run(app, client, team.owner, job_id))["status"] == "succeeded"


async def test_the_task_is_sent_only_after_the_commit(app: Any, engine: AsyncEngine, team: Team) -> None:
    from annotation_platform.core.queue import PENDING_INFO_KEY, enqueue_after_commit

    sent: list[tuple[str, Any]] = []
    queue = app.state.queue
    original = queue.send_task
    queue.send_task = lambda name, args=None, kwargs=None: sent.append((name, args))
    try:
        async with app.state.sessionmaker() as session:
            enqueue_after_commit(session, "imports.run", "rolled-back")
            await session.rollback()
            assert PENDING_INFO_KEY not in session.sync_session.info
        async with app.state.sessionmaker() as session:
            enqueue_after_commit(session, "imports.run", "committed")
            assert sent == []
            await session.commit()
    finally:
        queue.send_task = original
    assert sent == [("imports.run", ["committed"])]
