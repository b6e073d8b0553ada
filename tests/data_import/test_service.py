"""Imports end to end inside the test process: the endpoint queues a job, `run_import` (the worker's service)
runs it, the API reports it. A real worker process is exercised in tests/workers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.data_import.service import import_service, upload_path
from tests.conftest import Api, Team, problem
from tests.data_import.helpers import ROOM, chat_csv, counts, run, start, upload


async def _room(api: Api, team: Team, **fields: Any) -> dict[str, Any]:
    return await api.container(team.project, team.owner, **fields)


async def _items(client: httpx.AsyncClient, team: Team, container: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.get(f"/api/v1/containers/{container['id']}/items?limit=500", headers=team.owner.headers)
    return list(response.json()["items"])


async def _annotations(client: httpx.AsyncClient, team: Team, container: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.get(
        f"/api/v1/containers/{container['id']}/annotations?limit=500", headers=team.owner.headers
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_the_chat_preset_imports_a_room(app: Any, client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await _room(api, team)
    job_id = await start(client, room, team.manager, chat_csv(ROOM), annotator=team.annotator.username)

    job = await run(app, client, team.manager, job_id)

    assert job["status"] == "succeeded", job
    assert job["result"]["items_created"] == 4
    assert job["result"]["annotations_created"] == 3  # `null` means no value
    assert job["progress"] == {"done": 4, "total": 4}
    items = await _items(client, team, room)
    assert [item["external_id"] for item in items] == ["VAC_R10_001", "VAC_R10_002", "VAC_R10_017", "VAC_R10_018"]
    assert items[2]["parent_id"] == items[1]["id"]
    assert items[3]["parent_id"] is None, "a parent missing from the room leaves no parent"
    assert items[2]["content"] == 'Concordo, mas "obrigatório" é forte demais.'
    assert items[0]["metadata"] == {"user_id": "1280"}
    annotations = await _annotations(client, team, room)
    assert {(a["type"], a["data"]["thread_id"], a["created_by"]) for a in annotations} == {
        ("thread", "0", team.annotator.id),
        ("thread", "5", team.annotator.id),
    }
    container = await client.get(f"/api/v1/containers/{room['id']}", headers=team.owner.headers)
    assert container.json()["item_count"] == 4


async def test_two_annotators_on_one_room_share_the_items(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    room = await _room(api, team)
    first = await run(app, client, team.owner, await start(client, room, team.owner, chat_csv(ROOM)))
    second_file = [(u, t, text_, r, "7") for u, t, text_, r, _ in ROOM]
    second = await run(
        app,
        client,
        team.owner,
        await start(client, room, team.owner, chat_csv(second_file), annotator=team.annotator.email),
    )

    assert first["status"] == second["status"] == "succeeded"
    assert second["result"]["items_created"] == 0
    assert second["result"]["items_matched"] == 4
    assert second["result"]["annotations_created"] == 4
    annotations = await _annotations(client, team, room)
    by_author: dict[str, set[str]] = {}
    for annotation in annotations:
        by_author.setdefault(annotation["created_by"], set()).add(annotation["data"]["thread_id"])
    assert by_author == {team.owner.id: {"0", "5"}, team.annotator.id: {"7"}}
    assert len(await _items(client, team, room)) == 4


async def test_importing_the_same_file_again_changes_nothing(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    room = await _room(api, team)
    await run(app, client, team.owner, await start(client, room, team.owner, chat_csv(ROOM)))
    before_items = await _items(client, team, room)
    before_annotations = await _annotations(client, team, room)

    again = await run(app, client, team.owner, await start(client, room, team.owner, chat_csv(ROOM)))

    assert again["status"] == "succeeded"
    assert again["result"]["items_created"] == again["result"]["annotations_created"] == 0
    assert again["result"]["annotations_updated"] == 0
    assert await _items(client, team, room) == before_items
    assert await _annotations(client, team, room) == before_annotations


async def test_a_changed_label_updates_the_annotators_annotation(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await _room(api, team)
    await run(app, client, team.owner, await start(client, room, team.owner, chat_csv(ROOM)))
    changed = [ROOM[0], ROOM[1], (*ROOM[2][:4], "9"), ROOM[3]]

    job = await run(app, client, team.owner, await start(client, room, team.owner, chat_csv(changed)))

    assert job["result"]["annotations_updated"] == 1
    assert job["result"]["annotations_created"] == 0
    labels = sorted(a["data"]["thread_id"] for a in await _annotations(client, team, room))
    assert labels == ["0", "5", "9"]


async def test_a_dry_run_counts_and_writes_nothing(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    room = await _room(api, team)
    before = await counts(engine, room["id"])

    job = await run(app, client, team.owner, await start(client, room, team.owner, chat_csv(ROOM), dry_run=True))

    assert job["status"] == "succeeded"
    assert job["result"]["dry_run"] is True
    assert job["result"]["written"] is False
    assert job["result"]["items_created"] == 4
    assert job["result"]["annotations_created"] == 3
    assert await counts(engine, room["id"]) == before


BAD_ROWS = [
    *ROOM,
    ("1", "VAC_R10_002", "the same id again", "", "1"),
    ("1", "", "text but no turn id", "", "1"),
]


async def test_a_file_with_errors_writes_nothing_by_default(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    room = await _room(api, team)
    before = await counts(engine, room["id"])

    job = await run(app, client, team.owner, await start(client, room, team.owner, chat_csv(BAD_ROWS)))

    assert job["status"] == "failed"
    assert job["error_count"] == 2
    assert "nothing was written" in job["error_message"]
    assert await counts(engine, room["id"]) == before
    errors = (await client.get(f"/api/v1/jobs/{job['id']}/errors", headers=team.owner.headers)).json()["items"]
    assert [error["row"] for error in errors] == [5, 6]
    assert errors[0]["column"] == "turn_id", "errors name the file's columns"
    assert "repeats" in errors[0]["message"]


async def test_on_error_skip_writes_the_good_rows_and_reports_the_rest(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await _room(api, team)

    job = await run(app, client, team.owner, await start(client, room, team.owner, chat_csv(BAD_ROWS), on_error="skip"))

    assert job["status"] == "succeeded", job
    assert job["error_count"] == 2
    assert job["result"]["items_created"] == 4
    assert job["result"]["rows_skipped"] == 2
    assert len(await _items(client, team, room)) == 4


async def test_metadata_is_checked_against_the_item_schema(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    schema = {"type": "object", "properties": {"user_id": {"type": "string", "pattern": "^[0-9]+$"}}}
    room = await _room(api, team, item_schema=schema)
    rows = [ROOM[0], ("abc", "VAC_R10_050", "bad user id", "", "1")]

    job = await run(app, client, team.owner, await start(client, room, team.owner, chat_csv(rows)))

    assert job["status"] == "failed"
    errors = (await client.get(f"/api/v1/jobs/{job['id']}/errors", headers=team.owner.headers)).json()["items"]
    assert len(errors) == 1
    assert errors[0]["row"] == 2
    assert errors[0]["column"] == "user_id"


async def test_a_garbage_file_ends_as_a_failed_job_with_a_clear_message(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    room = await _room(api, team)
    for content, file_format in ((b"\x89PNG\r\n\x1a\n\x00\x00\x00binary", "csv"), (b'[{"turn_id": "1", ', "json")):
        job = await run(
            app, client, team.owner, await start(client, room, team.owner, content, file_format=file_format)
        )
        assert job["status"] == "failed", job
        assert job["error_message"].startswith("The file cannot be read:"), job["error_message"]
    assert await counts(engine, room["id"]) == (5, 0)


async def test_an_unknown_annotator_is_refused_up_front(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await _room(api, team)

    for annotator in ("nobody", team.stranger.username):
        response = await upload(client, room, team.owner, chat_csv(ROOM), annotator=annotator)
        problem(response, 422, "annotator_unknown")


async def test_a_bad_mapping_or_encoding_is_refused_up_front(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await _room(api, team)

    problem(await upload(client, room, team.owner, chat_csv(ROOM), mapping="[1, 2]"), 422, "mapping_invalid")
    problem(await upload(client, room, team.owner, chat_csv(ROOM), mapping="{nope"), 422, "mapping_invalid")
    problem(
        await upload(client, room, team.owner, chat_csv(ROOM), mapping='{"colour": "turn_id"}'), 422, "mapping_invalid"
    )
    problem(await upload(client, room, team.owner, chat_csv(ROOM), encoding="klingon-8"), 422, "encoding_unknown")
    problem(await upload(client, room, team.owner, chat_csv(ROOM), file_format="xlsx"), 422, "validation_failed")


async def test_only_managers_and_owners_may_import(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await _room(api, team)

    problem(await upload(client, room, team.annotator, chat_csv(ROOM)), 403, "forbidden")
    problem(await upload(client, room, team.stranger, chat_csv(ROOM)), 404, "not_found")
    assert (await upload(client, room, team.manager, chat_csv(ROOM))).status_code == 202


async def test_an_upload_over_the_limit_answers_413(app: Any, client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await _room(api, team)
    limit = app.state.settings.max_upload_bytes
    app.state.settings.max_upload_bytes = 2048
    try:
        response = await upload(client, room, team.owner, chat_csv(ROOM * 40))
    finally:
        app.state.settings.max_upload_bytes = limit
    problem(response, 413, "upload_too_large")


async def test_a_mapping_renames_columns_and_adds_annotation_types(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await _room(api, team)
    content = "id;text;Thread_zuil;mood\n".replace(";", ",") + "a1,hello,3,happy\na2,world,3,sad\n"
    mapping = '{"external_id": "id", "content": "text", "annotation.thread": "Thread_zuil", "annotation.mood": "mood"}'

    job = await run(app, client, team.owner, await start(client, room, team.owner, content.encode(), mapping=mapping))

    assert job["status"] == "succeeded", job
    annotations = await _annotations(client, team, room)
    assert sorted((a["type"], str(a["data"])) for a in annotations) == [
        ("mood", "{'value': 'happy'}"),
        ("mood", "{'value': 'sad'}"),
        ("thread", "{'thread_id': '3'}"),
        ("thread", "{'thread_id': '3'}"),
    ]


async def test_json_lines_import(app: Any, client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await _room(api, team)
    content = (
        b'{"turn_id": "j1", "turn_text": "one", "thread": "1"}\n'
        b'{"turn_id": "j2", "turn_text": "two", "thread": "1", "reply_to_turn": "j1"}\n'
    )

    job = await run(app, client, team.owner, await start(client, room, team.owner, content, file_format="jsonl"))

    assert job["status"] == "succeeded", job
    assert job["result"]["items_created"] == 2
    items = await _items(client, team, room)
    assert items[1]["parent_id"] == items[0]["id"]


async def test_uploads_are_kept_only_while_a_retry_may_need_them(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = app.state.settings
    monkeypatch.setattr(settings, "data_dir", tmp_path)  # this test's uploads only
    room = await _room(api, team)
    succeeded = await start(client, room, team.owner, chat_csv(ROOM))
    failed = await start(client, room, team.owner, chat_csv(BAD_ROWS))
    queued = await start(client, room, team.owner, chat_csv(ROOM))
    assert (await run(app, client, team.owner, succeeded))["status"] == "succeeded"
    assert (await run(app, client, team.owner, failed))["status"] == "failed"
    path_of = {job_id: upload_path(settings, uuid.UUID(job_id)) for job_id in (succeeded, failed, queued)}
    assert not path_of[succeeded].exists(), "a succeeded import cannot be retried: its upload is deleted"
    assert path_of[failed].exists()
    assert path_of[queued].exists()
    orphan = path_of[failed].with_name(str(uuid.uuid4()))
    orphan.write_bytes(b"left by a crash")
    stray = path_of[failed].with_name("notes.txt")
    stray.write_bytes(b"not ours")

    async with app.state.sessionmaker() as session:
        assert await import_service.expire_uploads(session, settings=settings) == 0, "nothing is old yet"
        later = datetime.now(UTC) + timedelta(hours=settings.upload_retention_hours + 1)
        assert await import_service.expire_uploads(session, settings=settings, now=later) == 2

    assert not path_of[failed].exists()
    assert not orphan.exists()
    assert path_of[queued].exists(), "a queued job's upload stays however old"
    assert stray.exists(), "files that are not uploads are left alone"
    retried = await client.post(f"/api/v1/jobs/{failed}/retry", headers=team.owner.headers)
    assert retried.status_code == 202
    job = await run(app, client, team.owner, failed)
    assert job["status"] == "failed"
    assert job["error_message"] == "The uploaded file is gone from the server."
