"""`GET /jobs/{id}/events`: a job's progress as Server-Sent Events."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import orjson
from sqlalchemy import update

from annotation_platform.job.service import job_service
from annotation_platform.models import Job
from tests.conftest import Team, problem
from tests.data_import.helpers import ROOM, chat_csv, run, start


def parse_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in body.split("\n\n"):
        lines = [line for line in block.split("\n") if line and not line.startswith(":")]
        if not lines:
            continue
        fields = dict(line.split(": ", 1) for line in lines)
        events.append((fields["event"], orjson.loads(fields["data"])))
    return events


async def test_a_finished_job_streams_its_state_then_end(app: Any, client: httpx.AsyncClient, team: Team) -> None:
    job_id = await start(client, team.container, team.owner, chat_csv(ROOM))
    finished = await run(app, client, team.owner, job_id)

    response = await client.get(f"/api/v1/jobs/{job_id}/events", headers=team.owner.headers)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    events = parse_events(response.text)
    assert [name for name, _ in events] == ["progress", "end"]
    assert events[0][1] == events[1][1] == finished


async def test_a_running_job_streams_each_change(app: Any, client: httpx.AsyncClient, team: Team) -> None:
    job_id = uuid.UUID(await start(client, team.container, team.owner, chat_csv(ROOM)))

    async def set_job(**values: Any) -> None:
        async with app.state.sessionmaker() as session, session.begin():
            await session.execute(update(Job).where(Job.id == job_id).values(**values))

    stream = job_service.events(app.state.sessionmaker, job_id=job_id, settings=app.state.settings, poll_seconds=0.01)
    seen = []
    name, job = await anext(stream)
    seen.append((name, job.status, job.progress.done, job.error_count))
    for values in (
        {"status": "running"},
        {"progress_done": 2, "progress_total": 4},
        {"error_count": 1},
        {"status": "failed", "progress_done": 4, "error_message": "bad rows"},
    ):
        await set_job(**values)
        name, job = await anext(stream)
        seen.append((name, job.status, job.progress.done, job.error_count))
    name, job = await anext(stream)
    seen.append((name, job.status, job.progress.done, job.error_count))

    assert seen == [
        ("progress", "queued", 0, 0),
        ("progress", "running", 0, 0),
        ("progress", "running", 2, 0),
        ("progress", "running", 2, 1),
        ("progress", "failed", 4, 1),
        ("end", "failed", 4, 1),
    ]
    assert job.error_message == "bad rows"
    assert [event async for event in stream] == [], "the stream closes after `end`"


async def test_an_unchanged_job_sends_nothing_new(app: Any, client: httpx.AsyncClient, team: Team) -> None:
    job_id = uuid.UUID(await start(client, team.container, team.owner, chat_csv(ROOM)))
    stream = job_service.events(app.state.sessionmaker, job_id=job_id, settings=app.state.settings, poll_seconds=0.01)
    assert (await anext(stream))[0] == "progress"
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(update(Job).where(Job.id == job_id).values(params={"touched": True}))
    async with app.state.sessionmaker() as session, session.begin():
        await session.execute(update(Job).where(Job.id == job_id).values(status="cancelled"))
    name, job = await anext(stream)
    assert (name, job.status) == ("progress", "cancelled"), "a params change alone is no event"
    assert (await anext(stream))[0] == "end"
    await stream.aclose()


async def test_others_jobs_are_not_found_before_the_stream(client: httpx.AsyncClient, team: Team) -> None:
    job_id = await start(client, team.container, team.owner, chat_csv(ROOM))

    problem(await client.get(f"/api/v1/jobs/{job_id}/events", headers=team.manager.headers), 404, "not_found")
    problem(await client.get(f"/api/v1/jobs/{uuid.uuid4()}/events", headers=team.owner.headers), 404, "not_found")
    problem(await client.get(f"/api/v1/jobs/{job_id}/events"), 401)


async def test_the_stream_stops_when_the_client_goes_away(app: Any, client: httpx.AsyncClient, team: Team) -> None:
    import asyncio

    job_id = await start(client, team.container, team.owner, chat_csv(ROOM))  # queued: it never ends by itself
    disconnected = asyncio.Event()
    sent: list[dict[str, Any]] = []
    requested: list[bool] = []

    async def receive() -> dict[str, Any]:
        if not requested:
            requested.append(True)
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            disconnected.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": f"/api/v1/jobs/{job_id}/events",
        "raw_path": f"/api/v1/jobs/{job_id}/events".encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"authorization", team.owner.headers["Authorization"].encode())],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
        "state": {},
    }
    await asyncio.wait_for(app(scope, receive, send), timeout=5)

    assert sent[0]["status"] == 200
    assert b"event: progress" in b"".join(message.get("body", b"") for message in sent[1:])
