"""Exports end to end inside the test process: the endpoint queues a job, `run_export` (the worker's service)
writes the file, the API serves it. A real worker process is exercised in tests/workers/test_exports.py."""

from __future__ import annotations

import csv
import io
import json
import os
import uuid
from datetime import timedelta
from typing import Any, BinaryIO

import httpx
import orjson
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.core.types import utcnow
from annotation_platform.data_export.service import export_service, run_export
from annotation_platform.data_export.storage import LocalExportStorage
from annotation_platform.job.service import request_cancel_by_file
from annotation_platform.models import Annotation
from tests.conftest import Actor, Api, Team, problem
from tests.data_import.helpers import ROOM, chat_csv, run, start, upload

TRICKY = 'She said "no",\nthen left: ação, naïve, 東京'
ROWS = [
    ("1280", "R_001", "Olá! O debate terá início em 3 minutos.", "", "0"),
    ("1969", "R_002", '=HYPERLINK("http://evil", "click")', "", "5"),
    ("2044", "R_003", TRICKY, "R_002", "5"),
    ("2044", "R_004", "-2 pontos para mim", "R_003", "null"),
]
SECOND = [("1280", "R_001", "", "", "1"), ("1969", "R_002", "", "", "5"), ("2044", "R_003", "", "", "@7")]


async def _room(app: Any, client: httpx.AsyncClient, api: Api, team: Team, name: str = "R") -> dict[str, Any]:
    """A room annotated by two members: the annotator (thread labels) and the reviewer (its own labels)."""
    room = await api.container(team.project, team.owner, name=name)
    first = await start(client, room, team.owner, chat_csv(ROWS), annotator=team.annotator.username)
    assert (await run(app, client, team.owner, first))["status"] == "succeeded"
    # The second file has the same turns (content is not updated by an import) and the reviewer's labels.
    second = await start(client, room, team.owner, chat_csv(SECOND), annotator=team.reviewer.username)
    assert (await run(app, client, team.owner, second))["status"] == "succeeded"
    return room


async def _export(
    client: httpx.AsyncClient, team: Team, by: Actor | None = None, headers: dict[str, str] | None = None, **body: Any
) -> httpx.Response:
    actor = by or team.owner
    return await client.post(
        f"/api/v1/projects/{team.project['id']}/exports", json=body, headers={**actor.headers, **(headers or {})}
    )


async def _exported(app: Any, client: httpx.AsyncClient, team: Team, **body: Any) -> tuple[dict[str, Any], bytes]:
    """Runs an export to its end; the job and the downloaded file."""
    response = await _export(client, team, **body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    assert response.headers["Location"] == f"/api/v1/jobs/{job_id}"
    await run_export(app.state.sessionmaker, uuid.UUID(job_id), settings=app.state.settings)
    job = (await client.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers)).json()
    assert job["status"] == "succeeded", job
    download = await client.get(f"/api/v1/jobs/{job_id}/download", headers=team.owner.headers)
    assert download.status_code == 200, download.text
    return job, download.content


def _lines(content: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in content.splitlines()]


async def test_jsonl_has_each_item_with_its_container_parent_metadata_and_annotations(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await _room(app, client, api, team)

    job, content = await _exported(app, client, team, format="jsonl", container_ids=[room["id"]])

    lines = _lines(content)
    assert job["kind"] == "export"
    assert job["result"] == {"items": 4, "annotations": 6, "bytes": len(content), "file": f"{job['id']}.jsonl"}
    assert job["progress"] == {"done": 4, "total": 4}
    assert [line["external_id"] for line in lines] == ["R_001", "R_002", "R_003", "R_004"]
    third = lines[2]
    assert third["container"] == "R"
    assert third["container_id"] == room["id"]
    assert third["content"] == TRICKY
    assert third["parent"] == "R_002"
    assert third["sequence"] == 2
    assert third["metadata"] == {"user_id": "2044"}
    assert sorted((a["author"], a["type"], a["data"]["thread_id"]) for a in third["annotations"]) == [
        (team.annotator.username, "thread", "5"),
        (team.reviewer.username, "thread", "@7"),
    ]
    assert {a["version"] for a in third["annotations"]} == {1}
    assert third["annotations"][0]["start_offset"] is None
    # Flat, import-ready copies of the metadata and of each annotator's label.
    assert third["metadata.user_id"] == "2044"
    assert third[f"thread:{team.annotator.username}"] == "5"
    assert third[f"thread:{team.reviewer.username}"] == "@7"
    assert lines[3]["annotations"] == []
    assert lines[0]["parent"] is None


async def test_json_is_an_array_of_the_same_objects(app: Any, client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await _room(app, client, api, team)
    _, jsonl = await _exported(app, client, team, format="jsonl", container_ids=[room["id"]])

    job, content = await _exported(app, client, team, format="json", container_ids=[room["id"]])

    assert json.loads(content) == _lines(jsonl)
    assert job["result"]["items"] == 4


async def test_an_empty_export_is_valid_json(app: Any, client: httpx.AsyncClient, api: Api, team: Team) -> None:
    room = await api.container(team.project, team.owner, name="empty")

    job, content = await _exported(app, client, team, format="json", container_ids=[room["id"]])

    assert json.loads(content) == []
    assert job["result"]["items"] == 0


async def test_csv_is_the_side_by_side_table_with_formulas_neutralised(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await _room(app, client, api, team)

    _, content = await _exported(app, client, team, format="csv", container_ids=[room["id"]])

    rows = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    written_by_python = io.StringIO()
    csv.writer(written_by_python, lineterminator="\r\n").writerows(rows)
    assert content.decode("utf-8") == written_by_python.getvalue(), "quoted only where needed, CRLF line ends"
    ana, rev = team.annotator.username, team.reviewer.username
    assert rows[0] == [
        "container",
        "external_id",
        "sequence",
        "content",
        "parent",
        "metadata.user_id",
        *sorted([f"thread:{ana}", f"thread:{rev}"]),
    ]
    table = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert [row["external_id"] for row in table] == ["R_001", "R_002", "R_003", "R_004"]
    assert table[1]["content"] == '\'=HYPERLINK("http://evil", "click")'
    assert table[2]["content"] == TRICKY
    assert table[3]["content"] == "'-2 pontos para mim"
    assert table[2]["parent"] == "R_002"
    assert table[2]["metadata.user_id"] == "2044"
    assert [(row[f"thread:{ana}"], row[f"thread:{rev}"]) for row in table] == [
        ("0", "1"),
        ("5", "5"),
        ("5", "'@7"),
        ("", ""),
    ]


async def test_filters_by_container_and_annotation_type(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await _room(app, client, api, team)
    await api.annotate(team.items[0], team.owner, type="sentiment", data={"value": "positive"})

    _, everything = await _exported(app, client, team, format="jsonl")
    _, sentiment = await _exported(app, client, team, format="csv", annotation_types=["sentiment"])
    _, threads = await _exported(
        app, client, team, format="jsonl", container_ids=[room["id"]], annotation_types=["thread"]
    )

    containers = [line["container"] for line in _lines(everything)]
    assert containers == ["R"] * 4 + ["VAC_R10"] * 5, "containers by name, items in sequence"
    header = next(csv.reader(io.StringIO(sentiment.decode())))
    assert header[-1] == f"sentiment:{team.owner.username}"
    assert not any(column.startswith("thread:") for column in header)
    rows = list(csv.reader(io.StringIO(sentiment.decode())))
    assert rows[5][-1] == "positive"
    assert {a["type"] for line in _lines(threads) for a in line["annotations"]} == {"thread"}
    assert all("sentiment:" not in key for line in _lines(threads) for key in line)


async def test_labels_prefer_plain_annotations_and_non_text_values_stay_json(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    """The same rules on both backends (PostgreSQL builds the objects and cells itself)."""
    room = await api.container(team.project, team.owner, name="Rules")
    metadata = {"n": 3, "tags": ["a", "b"], "empty": None, "note": "=1+1"}
    [item] = await api.items(room, team.owner, 1, content="a span and a label", metadata=metadata)
    await api.annotate(item, team.owner, data={"thread_id": "span"}, start_offset=0, end_offset=6)
    await api.annotate(item, team.owner, data={"thread_id": "plain"})
    await api.annotate(item, team.owner, data={"thread_id": "later"})
    await api.annotate(item, team.owner, type="sentiment", data={"value": 0.5})
    await api.annotate(item, team.owner, type="note", data={"text": "whole"})

    _, jsonl = await _exported(app, client, team, format="jsonl", container_ids=[room["id"]])
    _, content = await _exported(app, client, team, format="csv", container_ids=[room["id"]])

    [line] = _lines(jsonl)
    owner = team.owner.username
    assert line[f"thread:{owner}"] == "plain", "a plain label wins over an older span, then the oldest"
    assert line[f"sentiment:{owner}"] == 0.5
    assert line[f"note:{owner}"] == {"text": "whole"}
    assert line["metadata"] == metadata
    assert line["metadata.tags"] == ["a", "b"]
    assert line["metadata.empty"] is None
    assert len(line["annotations"]) == 5
    header, row = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    cells = dict(zip(header, row, strict=True))
    assert cells[f"thread:{owner}"] == "plain"
    assert cells[f"sentiment:{owner}"] == "0.5"
    assert json.loads(cells[f"note:{owner}"]) == {"text": "whole"}
    assert cells["metadata.n"] == "3"
    assert json.loads(cells["metadata.tags"]) == ["a", "b"]
    assert cells["metadata.empty"] == ""
    assert cells["metadata.note"] == "'=1+1"


async def test_a_deleted_authors_labels_are_under_deleted_user(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    """Annotations outlive their author (`created_by` becomes NULL); their column is `<type>:deleted-user`."""
    room = await api.container(team.project, team.owner, name="Gone")
    [item] = await api.items(room, team.owner, 1, content="an orphaned label")
    await api.annotate(item, team.owner, data={"thread_id": "7"})
    async with engine.begin() as connection:
        await connection.execute(
            update(Annotation).where(Annotation.item_id == uuid.UUID(item["id"])).values(created_by=None)
        )

    _, jsonl = await _exported(app, client, team, format="jsonl", container_ids=[room["id"]])
    _, content = await _exported(app, client, team, format="csv", container_ids=[room["id"]])

    [line] = _lines(jsonl)
    assert line["annotations"][0]["author"] == "deleted-user"
    assert line["thread:deleted-user"] == "7"
    header, row = list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))
    assert dict(zip(header, row, strict=True))["thread:deleted-user"] == "7"


async def test_only_managers_and_owners_may_export(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    problem(await _export(client, team, by=team.annotator, format="csv"), 403, "forbidden")
    problem(await _export(client, team, by=team.stranger, format="csv"), 404, "not_found")
    assert (await _export(client, team, by=team.manager, format="csv")).status_code == 202


async def test_containers_of_another_project_and_bad_bodies_are_refused(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    other = await api.project(team.stranger, name="Elsewhere")
    foreign = await api.container(other, team.stranger, name="theirs")

    foreign_answer = problem(await _export(client, team, format="csv", container_ids=[foreign["id"]]), 422)
    nowhere_answer = problem(await _export(client, team, format="csv", container_ids=[str(uuid.uuid4())]), 422)
    assert foreign_answer["code"] == nowhere_answer["code"] == "container_not_in_project"
    assert "theirs" not in foreign_answer["detail"]
    problem(await _export(client, team, format="xlsx"), 422, "validation_failed")
    problem(await _export(client, team, format="csv", colour="red"), 422, "validation_failed")
    problem(await _export(client, team, format="csv", annotation_types=["Not A Type"]), 422, "validation_failed")
    jobs = (await client.get("/api/v1/jobs", headers=team.owner.headers)).json()["items"]
    assert jobs == []


async def test_an_idempotency_key_gives_the_same_job_back(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    headers = {"Idempotency-Key": "export-1"}
    first = await _export(client, team, headers=headers, format="csv")
    again = await _export(client, team, headers=headers, format="json")

    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]


async def test_an_idempotency_key_of_another_request_is_refused_and_creates_nothing(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    key = {"Idempotency-Key": "monday-batch"}
    imported = await upload(client, team.container, team.owner, chat_csv(ROOM), headers=key)
    assert imported.status_code == 202, imported.text
    other_room = await api.container(team.project, team.owner)

    problem(await _export(client, team, headers=key, format="csv"), 422, "idempotency_key_reused")
    problem(await upload(client, other_room, team.owner, chat_csv(ROOM), headers=key), 422, "idempotency_key_reused")

    jobs = (await client.get("/api/v1/jobs", headers=team.owner.headers)).json()["items"]
    assert [job["id"] for job in jobs] == [imported.json()["id"]]
    again = await upload(client, team.container, team.owner, chat_csv(ROOM), headers=key)
    assert again.json()["id"] == imported.json()["id"]


async def test_download_serves_the_file_with_a_name_and_a_content_type(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    await _room(app, client, api, team)
    date = utcnow().date().isoformat()
    for file_format, media_type in [
        ("jsonl", "application/x-ndjson"),
        ("json", "application/json"),
        ("csv", "text/csv; charset=utf-8"),
    ]:
        job, _ = await _exported(app, client, team, format=file_format)
        response = await client.get(f"/api/v1/jobs/{job['id']}/download", headers=team.owner.headers)
        assert response.headers["content-type"] == media_type
        assert response.headers["content-disposition"] == f'attachment; filename="Debates-{date}.{file_format}"'
        assert response.headers["cache-control"] == "private, no-store"
        assert int(response.headers["content-length"]) == job["result"]["bytes"] == len(response.content)


async def test_expiry_removes_the_half_written_files_of_killed_exports(app: Any, client: httpx.AsyncClient) -> None:
    exports = app.state.settings.data_dir / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    stale, fresh = exports / ".0193-old.csv.part", exports / ".0193-new.csv.part"
    for partial in (stale, fresh):
        partial.write_bytes(b"half an export")
    long_ago = (utcnow() - timedelta(hours=app.state.settings.export_retention_hours + 1)).timestamp()
    os.utime(stale, (long_ago, long_ago))

    async with app.state.sessionmaker() as session, session.begin():
        await export_service.expire(session, settings=app.state.settings)

    assert not stale.exists()
    assert fresh.exists(), "an export still being written is left alone"


async def test_download_answers_404_409_and_410(app: Any, client: httpx.AsyncClient, api: Api, team: Team) -> None:
    queued = (await _export(client, team, format="csv")).json()
    problem(
        await client.get(f"/api/v1/jobs/{queued['id']}/download", headers=team.owner.headers), 409, "export_not_ready"
    )
    problem(await client.get(f"/api/v1/jobs/{queued['id']}/download", headers=team.manager.headers), 404, "not_found")

    job, _ = await _exported(app, client, team, format="csv")
    async with app.state.sessionmaker() as session, session.begin():
        assert await export_service.expire(session, settings=app.state.settings) == 0
        expired = await export_service.expire(session, settings=app.state.settings, now=utcnow() + timedelta(hours=73))
    assert expired == 1
    storage = LocalExportStorage(app.state.settings.data_dir / "exports")
    assert not storage.exists(f"{job['id']}.csv")
    gone = await client.get(f"/api/v1/jobs/{job['id']}/download", headers=team.owner.headers)
    problem(gone, 410, "export_expired")
    after = (await client.get(f"/api/v1/jobs/{job['id']}", headers=team.owner.headers)).json()
    assert after["result"]["expired"] is True
    assert after["result"]["items"] == 5


async def test_a_non_export_job_has_nothing_to_download(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await api.container(team.project, team.owner, name="R")
    job_id = await start(client, room, team.owner, chat_csv(ROWS))
    problem(await client.get(f"/api/v1/jobs/{job_id}/download", headers=team.owner.headers), 404, "not_found")


class _CancelOnFirstWrite:
    """A storage whose file asks for the job's cancel on its first write, as a client would mid-export."""

    def __init__(self, inner: LocalExportStorage, cancel: Any) -> None:
        self.inner = inner
        self.cancel = cancel

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open_for_write(self, name: str) -> Any:
        outer = self
        context = self.inner.open_for_write(name)

        class Wrapped:
            def __enter__(self) -> BinaryIO:
                handle = context.__enter__()
                original = handle.write

                def write(data: Any) -> int:
                    outer.cancel()
                    return original(data)

                handle.write = write  # type: ignore[method-assign]
                return handle

            def __exit__(self, *exc: Any) -> Any:
                return context.__exit__(*exc)

        return Wrapped()


async def test_a_cancel_is_honoured_before_the_file_is_kept(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, backend: str
) -> None:
    """SQLite reads pages and checks between them; PostgreSQL streams each container through one COPY and
    checks as chunks arrive (at most every PROGRESS_INTERVAL) and at the container's end."""
    settings = app.state.settings.model_copy(update={"export_batch_size": 2})
    job_id = (await _export(client, team, format="jsonl")).json()["id"]
    storage = LocalExportStorage(settings.data_dir / "exports")
    cancelling = _CancelOnFirstWrite(storage, lambda: request_cancel_by_file(settings, uuid.UUID(job_id)))

    await run_export(app.state.sessionmaker, uuid.UUID(job_id), settings=settings, storage=cancelling)

    job = (await client.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers)).json()
    assert job["status"] == "cancelled", job
    if backend == "sqlite":
        assert job["progress"]["done"] == 2, "stopped after the first page"
    assert not storage.exists(f"{job_id}.jsonl")
    assert list((settings.data_dir / "exports").glob(f"*{job_id}*")) == []


async def test_round_trip_export_then_import_gives_the_same_items_and_annotations(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    room = await _room(app, client, api, team)
    _, original = await _exported(app, client, team, format="jsonl", container_ids=[room["id"]])
    copy = await api.container(team.project, team.owner, name="copy")

    for annotator in (team.annotator, team.reviewer):
        mapping = {
            "external_id": "external_id",
            "content": "content",
            "sequence": "sequence",
            "parent": "parent",
            "metadata.user_id": "metadata.user_id",
            "annotation.thread": f"thread:{annotator.username}",
        }
        job_id = await start(
            client,
            copy,
            team.owner,
            original,
            file_format="jsonl",
            mapping=json.dumps(mapping),
            annotator=annotator.username,
        )
        job = await run(app, client, team.owner, job_id)
        assert job["status"] == "succeeded", job
    _, copied = await _exported(app, client, team, format="jsonl", container_ids=[copy["id"]])

    def essence(content: bytes) -> list[tuple[Any, ...]]:
        return [
            (
                line["external_id"],
                line["content"],
                line["sequence"],
                line["parent"],
                line["metadata"],
                sorted((a["author"], a["type"], json.dumps(a["data"]), a["start_offset"]) for a in line["annotations"]),
            )
            for line in _lines(content)
        ]

    assert essence(copied) == essence(original)
    assert len(_lines(copied)) == 4
