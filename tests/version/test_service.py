"""Versions end to end inside the test process: the endpoints queue jobs, `run_snapshot` and `run_restore` (the
worker's services) do the work, the API lists, reads and diffs. A real worker is exercised in
tests/workers/test_versions.py."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from annotation_platform.core.ids import uuid7
from annotation_platform.data_export.storage import export_storage
from annotation_platform.models import ProjectVersion
from annotation_platform.version.service import run_restore, run_snapshot
from annotation_platform.version.snapshot import SnapshotWriter, open_snapshot, read_records
from tests.conftest import Actor, Api, Team, problem
from tests.history import assert_history_complete, catch_up


def _versions(team: Team, project_id: str | None = None) -> str:
    return f"/api/v1/projects/{project_id or team.project['id']}/versions"


async def _snapshot(app: Any, client: httpx.AsyncClient, team: Team, tag: str, project_id: str | None = None) -> str:
    """Takes a version to its end, reading two items at a time (several chunks per container); its id."""
    response = await client.post(_versions(team, project_id), json={"tag": tag}, headers=team.owner.headers)
    assert response.status_code == 202, response.text
    assert response.headers["Location"] == f"/api/v1/jobs/{response.json()['id']}"
    job_id = response.json()["id"]
    settings = app.state.settings.model_copy(update={"export_batch_size": 2})
    await run_snapshot(app.state.sessionmaker, uuid.UUID(job_id), settings=settings)
    job = (await client.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers)).json()
    assert job["status"] == "succeeded", job
    return str(job["result"]["version_id"])


async def _diff(
    client: httpx.AsyncClient, team: Team, version: str, against: str, project_id: str | None = None, **query: Any
) -> dict[str, Any]:
    response = await client.get(
        f"{_versions(team, project_id)}/{version}/diff",
        params={"against": against, **query},
        headers=team.owner.headers,
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def _changes(diff: dict[str, Any]) -> set[tuple[Any, ...]]:
    return {
        (
            entry["kind"],
            entry["change"],
            entry["external_id"],
            entry["annotator"],
            entry["type"],
            tuple(entry["fields"]),
        )
        for entry in diff["items"]
    }


async def _edit(client: httpx.AsyncClient, url: str, by: Actor, body: dict[str, Any]) -> None:
    response = await client.patch(url, json=body, headers=by.headers)
    assert response.status_code == 200, response.text


async def test_snapshot_change_diff_restore_and_the_restored_copy_diffs_empty(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    items = team.items  # t00000 .. t00004, in the team's container
    annotator, reviewer = team.annotator, team.reviewer
    room_url = f"/api/v1/containers/{team.container['id']}"
    schema = {"type": "object", "properties": {"user_id": {"type": "string"}}}
    await _edit(client, room_url, team.owner, {"item_schema": schema})
    await _edit(client, f"/api/v1/items/{items[2]['id']}", team.owner, {"parent_id": items[1]["id"]})
    await _edit(client, f"/api/v1/items/{items[4]['id']}", team.owner, {"metadata": {"user_id": "u4"}})
    edited = await api.annotate(items[0], annotator)
    await api.annotate(items[0], reviewer)
    await api.annotate(items[1], annotator)
    await api.annotate(items[2], annotator, type="span", data={"label": "greeting"}, start_offset=0, end_offset=4)
    await api.annotate(items[3], annotator)
    dropped = await api.annotate(items[0], reviewer, type="sentiment", data={"value": "neutral"})

    first = await _snapshot(app, client, team, "v1.0")

    version = (await client.get(f"{_versions(team)}/{first}", headers=team.viewer.headers)).json()
    assert version["tag"] == "v1.0"
    assert version["status"] == "succeeded"
    assert version["counts"] == {"containers": 1, "items": 5, "annotations": 6}
    assert len(version["checksum"]) == 64
    assert version["size_bytes"] > 0
    assert version["created_by"] == team.owner.id

    # The changes: one item added, one edited, one deleted (with its annotation); one annotation edited, one
    # deleted, one added.
    added = await client.post(
        f"/api/v1/containers/{team.container['id']}/items",
        json={"external_id": "new-1", "content": "a late turn"},
        headers=team.owner.headers,
    )
    assert added.status_code == 201, added.text
    await _edit(client, f"/api/v1/items/{items[1]['id']}", team.owner, {"content": "edited turn"})
    assert (await client.delete(f"/api/v1/items/{items[3]['id']}", headers=team.owner.headers)).status_code == 204
    await _edit(client, f"/api/v1/annotations/{edited['id']}", annotator, {"data": {"thread_id": "9"}})
    deleted = await client.delete(f"/api/v1/annotations/{dropped['id']}", headers=reviewer.headers)
    assert deleted.status_code == 204, deleted.text
    await api.annotate(items[4], annotator, type="sentiment", data={"value": "positive"})
    await _edit(client, room_url, team.owner, {"item_schema": {**schema, "required": []}})

    second = await _snapshot(app, client, team, "v2.0")
    diff = await _diff(client, team, second, first, limit=500, include_total="true")

    a, r = annotator.username, reviewer.username
    assert _changes(diff) == {
        ("container", "changed", None, None, None, ("item_schema",)),
        ("item", "added", "new-1", None, None, ()),
        ("item", "changed", "t00001", None, None, ("content",)),
        ("item", "removed", "t00003", None, None, ()),
        ("annotation", "removed", "t00003", a, "thread", ()),
        ("annotation", "changed", "t00000", a, "thread", ("data",)),
        ("annotation", "removed", "t00000", r, "sentiment", ()),
        ("annotation", "added", "t00004", a, "sentiment", ()),
    }
    summary = diff["summary"]
    assert summary["containers"] == {"added": 0, "removed": 0, "changed": 1}
    assert summary["items"] == {"added": 1, "removed": 1, "changed": 1}
    assert summary["annotations"] == {"added": 1, "removed": 2, "changed": 1}
    by = {(entry["annotator"], entry["type"]): entry for entry in summary["annotations_by"]}
    assert {key: (e["added"], e["removed"], e["changed"]) for key, e in by.items()} == {
        (a, "thread"): (0, 1, 1),
        (a, "sentiment"): (1, 0, 0),
        (r, "sentiment"): (0, 1, 0),
    }
    assert by[(a, "thread")]["annotator_id"] == annotator.id
    assert diff["total"] == 8
    change = next(e for e in diff["items"] if e["kind"] == "annotation" and e["change"] == "changed")
    assert (change["before"]["data"], change["after"]["data"]) == ({"thread_id": "1"}, {"thread_id": "9"})

    # Pages of 3 walk the same changes in the same order, with a Link to the next.
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query: dict[str, Any] = {"limit": 3} if cursor is None else {"limit": 3, "cursor": cursor}
        page = await client.get(
            f"{_versions(team)}/{second}/diff", params={"against": first, **query}, headers=team.viewer.headers
        )
        assert page.status_code == 200, page.text
        pages.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if cursor is None:
            assert "Link" not in page.headers
            break
        assert 'rel="next"' in page.headers["Link"]
    assert pages == diff["items"]

    # Restore the first version into a new project: the caller owns it, the original is untouched.
    restore = await client.post(f"{_versions(team)}/{first}/restore", json={}, headers=team.owner.headers)
    assert restore.status_code == 202, restore.text
    await run_restore(app.state.sessionmaker, uuid.UUID(restore.json()["id"]), settings=app.state.settings)
    job = (await client.get(f"/api/v1/jobs/{restore.json()['id']}", headers=team.owner.headers)).json()
    assert job["status"] == "succeeded", job
    copy_id = job["result"]["project_id"]
    audit = await client.get(
        "/api/v1/audit-events",
        params={"project_id": team.project["id"], "resource_type": "version"},
        headers=team.owner.headers,
    )
    assert [event["action"] for event in audit.json()["items"]] == [
        "version.create",
        "version.create",
        "version.restore",
    ]
    assert copy_id != team.project["id"]
    copy = (await client.get(f"/api/v1/projects/{copy_id}", headers=team.owner.headers)).json()
    assert copy["name"] == "Debates (v1.0)"
    assert copy["my_role"] == "owner"
    (room,) = (await client.get(f"/api/v1/projects/{copy_id}/containers", headers=team.owner.headers)).json()["items"]
    assert (room["item_count"], room["item_schema"], room["item_schema_version"]) == (5, schema, 2)
    restored = (await client.get(f"/api/v1/containers/{room['id']}/items", headers=team.owner.headers)).json()["items"]
    by_external_id = {item["external_id"]: item for item in restored}
    assert by_external_id["t00002"]["parent_id"] == by_external_id["t00001"]["id"]
    # The schemas the items were validated against come along, under the same numbers.
    kept = (await client.get(f"/api/v1/containers/{room['id']}/item-schemas", headers=team.owner.headers)).json()
    assert [(v["version"], v["item_schema"]) for v in kept["items"]] == [(1, None), (2, schema)]
    assert {e: item["schema_version"] for e, item in by_external_id.items()} == {
        "t00000": 1,
        "t00001": 1,
        "t00002": 1,
        "t00003": 1,
        "t00004": 2,
    }

    copied = await _snapshot(app, client, team, "copied", project_id=copy_id)
    empty = await _diff(client, team, copied, first, project_id=copy_id, include_total="true")
    assert empty["items"] == []
    assert empty["total"] == 0
    assert empty["summary"]["annotations"] == {"added": 0, "removed": 0, "changed": 0}
    assert await assert_history_complete(app.state.engine) > 0, "the copy's annotations have their history too"
    feed, _ = await catch_up(client, copy_id, team.owner.headers, None, expected=7)  # 1 container, 5 items, ...
    assert {(change["resource_type"], change["action"]) for change in feed} >= {
        ("container", "created"),
        ("item", "created"),
        ("annotation", "created"),
    }
    untouched = await _snapshot(app, client, team, "v2.1")
    assert (await _diff(client, team, untouched, second, include_total="true"))["total"] == 0


async def test_bad_requests_answer_clearly_and_change_nothing(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    owner = team.owner.headers
    assert problem(await client.post(_versions(team), json={"tag": "has space"}, headers=owner), 422)
    assert problem(await client.post(_versions(team), json={"tag": "v1", "extra": 1}, headers=owner), 422)
    elsewhere = await api.project(team.owner, name="Elsewhere")
    foreign_room = await api.container(elsewhere, team.owner)
    problem(
        await client.post(_versions(team), json={"tag": "v1", "container_ids": [foreign_room["id"]]}, headers=owner),
        422,
        "container_not_in_project",
    )
    listed = await client.get(_versions(team), headers=owner)
    assert listed.json()["items"] == []

    queued = await client.post(_versions(team), json={"tag": "v1", "message": "first"}, headers=owner)
    assert queued.status_code == 202
    problem(await client.post(_versions(team), json={"tag": "v1"}, headers=owner), 409, "version_tag_taken")
    (pending,) = (await client.get(_versions(team), headers=team.viewer.headers)).json()["items"]
    assert (pending["status"], pending["message"], pending["checksum"]) == ("queued", "first", None)
    problem(
        await client.get(f"{_versions(team)}/{pending['id']}/diff?against={pending['id']}", headers=owner),
        409,
        "version_not_ready",
    )
    problem(await client.post(f"{_versions(team)}/{pending['id']}/restore", headers=owner), 409, "version_not_ready")
    # A tag whose snapshot was cancelled (or failed) may be taken again: the new version replaces it.
    assert (await client.post(f"/api/v1/jobs/{queued.json()['id']}/cancel", headers=owner)).status_code == 200
    again = await client.post(_versions(team), json={"tag": "v1", "message": "second try"}, headers=owner)
    assert again.status_code == 202, again.text
    (replaced,) = (await client.get(_versions(team), headers=owner)).json()["items"]
    assert (replaced["message"], replaced["status"]) == ("second try", "queued")

    problem(await client.get(f"{_versions(team)}/{uuid7()}", headers=owner), 404)
    problem(await client.get(f"{_versions(team)}/not-a-uuid", headers=owner), 404)
    other = await _snapshot(app, client, team, "theirs", project_id=elsewhere["id"])
    problem(await client.get(f"{_versions(team)}/{other}", headers=owner), 404)
    problem(await client.post(f"{_versions(team)}/{other}/restore", headers=owner), 404)
    # `against` in a project the caller cannot read does not exist for them.
    mine = await _snapshot(app, client, team, "mine")
    stranger_project = await api.project(team.stranger, name="Private")
    hidden = await _snapshot(
        app, client, Team(**{**team.__dict__, "owner": team.stranger}), "x", stranger_project["id"]
    )
    problem(await client.get(f"{_versions(team)}/{mine}/diff?against={hidden}", headers=owner), 404)


async def test_a_version_of_chosen_containers_holds_only_those(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    other_room = await api.container(team.project, team.owner, name="other")
    await api.items(other_room, team.owner, 3)
    response = await client.post(
        _versions(team), json={"tag": "one-room", "container_ids": [team.container["id"]]}, headers=team.owner.headers
    )
    await run_snapshot(app.state.sessionmaker, uuid.UUID(response.json()["id"]), settings=app.state.settings)
    (version,) = (await client.get(_versions(team), headers=team.owner.headers)).json()["items"]
    assert version["container_ids"] == [team.container["id"]]
    assert version["counts"] == {"containers": 1, "items": 5, "annotations": 0}
    whole = await _snapshot(app, client, team, "whole")
    diff = await _diff(client, team, whole, version["id"])
    assert diff["summary"]["containers"]["added"] == 1
    assert diff["summary"]["items"] == {"added": 3, "removed": 0, "changed": 0}


async def test_a_snapshot_is_one_instant_while_annotations_are_written(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    """A writer adds one annotation to every item per transaction while the snapshot reads one item at a time: in
    one consistent read every item has the same number of annotations."""
    body = {"items": [{"item_id": item["id"], "type": "thread", "data": {"thread_id": "1"}} for item in team.items]}
    url = f"/api/v1/containers/{team.container['id']}/annotations/bulk"
    response = await client.post(_versions(team), json={"tag": "busy"}, headers=team.owner.headers)
    job_id = uuid.UUID(response.json()["id"])
    settings = app.state.settings.model_copy(update={"export_batch_size": 1})
    snapshot_done = asyncio.Event()

    async def write() -> int:
        rounds = 0
        while not snapshot_done.is_set():
            written = await client.post(url, json=body, headers=team.annotator.headers)
            assert written.status_code == 201, written.text
            rounds += 1
            await asyncio.sleep(0)
        return rounds

    async def take() -> None:
        await asyncio.sleep(0.05)
        try:
            await run_snapshot(app.state.sessionmaker, job_id, settings=settings)
        finally:
            snapshot_done.set()

    rounds, _ = await asyncio.gather(write(), take())

    job = (await client.get(f"/api/v1/jobs/{job_id}", headers=team.owner.headers)).json()
    version = (await client.get(f"{_versions(team)}/{job['result']['version_id']}", headers=team.owner.headers)).json()
    with export_storage(app.state.settings).open_for_read(f"version-{version['id']}.jsonl.gz") as source:
        opened = open_snapshot(source, version["checksum"])
        per_item = [len(item["annotations"]) for item in opened.items]
    assert rounds > 1
    assert len(per_item) == 5
    assert len(set(per_item)) == 1, per_item


@pytest.mark.parametrize("damage", ["flipped_byte", "well_formed_but_other_records"])
async def test_a_file_that_does_not_match_its_checksum_is_refused(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team, damage: str
) -> None:
    """Refused before it is used: a flipped byte can also inflate to well-formed records of the wrong shape
    (the second case, made deterministic), which must not reach the diff or the restore."""
    version = await _snapshot(app, client, team, "v1")
    storage = export_storage(app.state.settings)
    name = f"version-{version}.jsonl.gz"
    path = storage.path(name)
    assert path is not None
    if damage == "flipped_byte":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        with path.open("rb") as source:
            header = next(read_records(source, ""))  # the checksum is checked only at the end
        with storage.open_for_write(name) as target:
            writer = SnapshotWriter(target)
            writer.write(header)
            writer.write({"record": "item", "unexpected": True})
            writer.close()
    # Listing and reading a version never touch its file (the table has all they show).
    read = await client.get(f"{_versions(team)}/{version}", headers=team.owner.headers)
    assert (read.status_code, read.json()["status"]) == (200, "succeeded")
    assert [v["id"] for v in (await client.get(_versions(team), headers=team.owner.headers)).json()["items"]] == [
        version
    ]

    diff = await client.get(f"{_versions(team)}/{version}/diff?against={version}", headers=team.owner.headers)
    problem(diff, 500, "version_corrupt")
    restore = await client.post(f"{_versions(team)}/{version}/restore", headers=team.owner.headers)
    await run_restore(app.state.sessionmaker, uuid.UUID(restore.json()["id"]), settings=app.state.settings)
    job = (await client.get(f"/api/v1/jobs/{restore.json()['id']}", headers=team.owner.headers)).json()
    assert job["status"] == "failed", job
    assert job["error_message"].startswith("Nothing was written")
    projects = (await client.get("/api/v1/projects", headers=team.owner.headers)).json()["items"]
    assert [project["id"] for project in projects] == [team.project["id"]]


async def test_a_snapshot_written_before_schema_versions_were_kept_still_restores(
    app: Any, client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    """A file without the schema's version, its history and the items' `schema_version` (as snapshots were
    written before): the copy starts its schema at version 1 and its items on it."""
    schema = {"type": "object"}
    await _edit(client, f"/api/v1/containers/{team.container['id']}", team.owner, {"item_schema": schema})
    version = await _snapshot(app, client, team, "old-style")
    storage = export_storage(app.state.settings)
    name = f"version-{version}.jsonl.gz"
    row = (await client.get(f"{_versions(team)}/{version}", headers=team.owner.headers)).json()
    with storage.open_for_read(name) as source:
        records = list(read_records(source, row["checksum"]))
    with storage.open_for_write(name) as target:
        writer = SnapshotWriter(target)
        for record in records:
            for key in ("item_schema_version", "item_schemas", "schema_version"):
                record.pop(key, None)
            writer.write(record)
        writer.close()
    async with app.state.engine.begin() as connection:
        await connection.execute(
            update(ProjectVersion)
            .where(ProjectVersion.id == uuid.UUID(version))
            .values(checksum=writer.checksum, size_bytes=writer.size)
        )

    restore = await client.post(f"{_versions(team)}/{version}/restore", json={}, headers=team.owner.headers)
    await run_restore(app.state.sessionmaker, uuid.UUID(restore.json()["id"]), settings=app.state.settings)
    job = (await client.get(f"/api/v1/jobs/{restore.json()['id']}", headers=team.owner.headers)).json()
    assert job["status"] == "succeeded", job
    copy_id = job["result"]["project_id"]
    (room,) = (await client.get(f"/api/v1/projects/{copy_id}/containers", headers=team.owner.headers)).json()["items"]
    assert (room["item_schema"], room["item_schema_version"]) == (schema, 1)
    kept = (await client.get(f"/api/v1/containers/{room['id']}/item-schemas", headers=team.owner.headers)).json()
    assert [(v["version"], v["item_schema"]) for v in kept["items"]] == [(1, schema)]
    items = (await client.get(f"/api/v1/containers/{room['id']}/items", headers=team.owner.headers)).json()["items"]
    assert {item["schema_version"] for item in items} == {1}
