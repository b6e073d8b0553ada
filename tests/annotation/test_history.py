"""Annotation history: a revision for every create, update, revert and delete on every write path, revert as a
new version, If-Match made mandatory per project, and (PostgreSQL) two writers racing on one annotation."""

from __future__ import annotations

import asyncio
import secrets
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.annotation.schemas import AnnotationUpdate
from annotation_platform.annotation.service import annotation_service
from annotation_platform.core.errors import PreconditionFailed
from annotation_platform.models import User
from tests.conftest import PASSWORD, Api, Team, problem
from tests.history import assert_history_complete
from tests.test_serve_prod import production_server

A = "/api/v1/annotations/{}"


async def _history(client: httpx.AsyncClient, annotation_id: str, by: Any, **params: Any) -> httpx.Response:
    return await client.get(A.format(annotation_id) + "/history", params=params, headers=by.headers)


async def test_every_change_is_a_revision_and_revert_makes_a_new_version(
    client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    annotation = await api.annotate(team.items[0], team.annotator, data={"thread_id": "1"})
    url = A.format(annotation["id"])
    patched = await client.patch(url, json={"data": {"thread_id": "2"}}, headers=team.annotator.headers)
    assert patched.status_code == 200, patched.text
    moved = await client.patch(
        url, json={"start_offset": 0, "end_offset": 4}, headers={**team.reviewer.headers, "If-Match": '"2"'}
    )
    assert moved.status_code == 200, moved.text

    revert = url + "/revert"
    stale = await client.post(revert, json={"version": 1}, headers={**team.reviewer.headers, "If-Match": '"2"'})
    problem(stale, 412, "precondition_failed")
    unknown = await client.post(revert, json={"version": 3}, headers=team.reviewer.headers)
    assert problem(unknown, 422, "unknown_version")["errors"][0]["loc"] == ["body", "version"]
    reverted = await client.post(revert, json={"version": 1}, headers={**team.reviewer.headers, "If-Match": '"3"'})
    assert reverted.status_code == 200, reverted.text
    assert reverted.headers["ETag"] == '"4"'
    body = reverted.json()
    assert (body["version"], body["data"], body["start_offset"]) == (4, {"thread_id": "1"}, None)

    first = await _history(client, annotation["id"], team.viewer, limit=3)
    assert first.status_code == 200, first.text
    assert 'rel="next"' in first.headers["Link"]
    rest = await _history(client, annotation["id"], team.viewer, cursor=first.json()["next_cursor"])
    revisions = first.json()["items"] + rest.json()["items"]
    assert rest.json()["next_cursor"] is None
    assert [(r["version"], r["action"], r["reverted_from"]) for r in revisions] == [
        (1, "created", None),
        (2, "updated", None),
        (3, "updated", None),
        (4, "reverted", 1),
    ]
    assert [r["changed_by"] for r in revisions] == [team.annotator.id] * 2 + [team.reviewer.id] * 2
    assert (revisions[2]["start_offset"], revisions[2]["data"]) == (0, {"thread_id": "2"})
    await assert_history_complete(engine)

    deleted = await client.delete(url, headers=team.reviewer.headers)
    assert deleted.status_code == 204
    for member in (team.viewer, team.annotator, team.reviewer, team.stranger):
        problem(await _history(client, annotation["id"], member), 404, "not_found")
    kept = await _history(client, annotation["id"], team.manager)
    assert kept.status_code == 200, kept.text
    last = kept.json()["items"][-1]
    assert (last["version"], last["action"], last["data"], last["changed_by"]) == (
        5,
        "deleted",
        {"thread_id": "1"},
        team.reviewer.id,
    )
    problem(await client.post(url + "/revert", json={"version": 1}, headers=team.manager.headers), 404)
    problem(await _history(client, str(uuid.uuid4()), team.manager), 404)


async def test_bulk_writes_item_deletes_and_gold_deletes_keep_history(
    client: httpx.AsyncClient, team: Team, engine: AsyncEngine
) -> None:
    container = team.container["id"]
    rows = [{"item_id": item["id"], "type": "sentiment", "data": {"label": "pos"}} for item in team.items[:3]]
    bulk = await client.post(
        f"/api/v1/containers/{container}/annotations/bulk", json={"items": rows}, headers=team.annotator.headers
    )
    assert bulk.status_code == 201, bulk.text
    gold = await client.post(
        f"/api/v1/containers/{container}/gold",
        json={"type": "sentiment", "source": "annotator", "annotator": team.annotator.username},
        headers=team.reviewer.headers,
    )
    assert gold.status_code == 201, gold.text
    assert await assert_history_complete(engine) == 6

    first_item = f"/api/v1/items/{team.items[0]['id']}"
    on_first_item = (await client.get(first_item + "/annotations", headers=team.owner.headers)).json()
    removed = await client.delete(first_item, headers=team.manager.headers)
    assert removed.status_code == 204
    for annotation in on_first_item["items"]:
        history = (await _history(client, annotation["id"], team.manager)).json()["items"]
        assert [(r["version"], r["action"], r["changed_by"]) for r in history] == [
            (1, "created", annotation["created_by"]),
            (2, "deleted", team.manager.id),
        ]
    gold_ids = [
        a["id"]
        for a in (await client.get(f"/api/v1/containers/{container}/annotations", headers=team.owner.headers)).json()[
            "items"
        ]
        if a["is_gold"]
    ]
    assert len(gold_ids) == 2
    dropped = await client.delete(
        f"/api/v1/containers/{container}/gold", params={"type": "sentiment"}, headers=team.reviewer.headers
    )
    assert dropped.status_code == 204, dropped.text
    for annotation_id in gold_ids:
        history = (await _history(client, annotation_id, team.owner)).json()["items"]
        assert [(r["action"], r["is_gold"]) for r in history] == [("created", True), ("deleted", True)]
    audited = await client.get(
        "/api/v1/audit-events",
        params={"action": "gold.delete", "project_id": team.project["id"]},
        headers=team.owner.headers,
    )
    (event,) = audited.json()["items"]
    assert (event["resource_id"], event["before"]) == (container, {"type": "sentiment", "annotations_deleted": 2})
    assert await assert_history_complete(engine) == 2


async def test_a_project_can_make_if_match_mandatory(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    annotation = await api.annotate(team.items[0], team.annotator)
    url = A.format(annotation["id"])
    project_url = f"/api/v1/projects/{team.project['id']}"
    assert team.project["require_if_match"] is False
    problem(await client.patch(project_url, json={"require_if_match": None}, headers=team.manager.headers), 422)
    switched = await client.patch(project_url, json={"require_if_match": True}, headers=team.manager.headers)
    assert switched.json()["require_if_match"] is True

    change = {"data": {"thread_id": "9"}}
    problem(await client.patch(url, json=change, headers=team.annotator.headers), 428, "if_match_required")
    problem(await client.post(url + "/revert", json={"version": 1}, headers=team.annotator.headers), 428)
    problem(await client.delete(url, headers=team.annotator.headers), 428, "if_match_required")
    unchanged = await client.get(url, headers=team.annotator.headers)
    assert unchanged.json()["version"] == 1
    problem(await client.patch(url, json=change, headers={**team.annotator.headers, "If-Match": '"7"'}), 412)
    ok = await client.patch(url, json=change, headers={**team.annotator.headers, "If-Match": unchanged.headers["ETag"]})
    assert ok.status_code == 200, ok.text
    gone = await client.delete(url, headers={**team.annotator.headers, "If-Match": ok.headers["ETag"]})
    assert gone.status_code == 204


async def test_two_writers_racing_on_one_annotation(
    backend: str, app: Any, client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    """Both read the same version and both write: with that version in If-Match the database lets exactly one
    through; without a version (no If-Match, or `*`) both edits are made, one after the other. Never is an
    edit lost without the client knowing."""
    annotation = await api.annotate(team.items[0], team.annotator)
    url = A.format(annotation["id"])

    # Over HTTP: pairs of PATCHes with the same If-Match, sent together.
    for round_ in range(1, 6):
        headers = {**team.reviewer.headers, "If-Match": f'"{round_}"'}
        answers = await asyncio.gather(
            *(client.patch(url, json={"data": {"writer": name, "round": round_}}, headers=headers) for name in "ab")
        )
        assert sorted(answer.status_code for answer in answers) == [200, 412], [a.text for a in answers]
        winner = next(answer.json() for answer in answers if answer.status_code == 200)
        current = (await client.get(url, headers=team.reviewer.headers)).json()
        assert (current["version"], current["data"]) == (round_ + 1, winner["data"])

    # Without a version to hold on to, each client asked for its change whatever the current version: both are
    # made, each a version with its revision, and the later one is current.
    version = 6
    for condition in ({}, {"If-Match": "*"}, {}):
        headers = {**team.reviewer.headers, **condition}
        answers = await asyncio.gather(
            *(client.patch(url, json={"data": {"writer": name, "at": version}}, headers=headers) for name in "ab")
        )
        assert [answer.status_code for answer in answers] == [200, 200], [a.text for a in answers]
        written = sorted((answer.json()["version"], answer.json()["data"]) for answer in answers)
        assert [number for number, _ in written] == [version + 1, version + 2]
        history = (await _history(client, annotation["id"], team.reviewer, limit=100)).json()["items"]
        assert [(r["version"], r["data"]) for r in history[-2:]] == written
        current = (await client.get(url, headers=team.reviewer.headers)).json()
        assert (current["version"], current["data"]) == written[-1]
        version += 2
    await assert_history_complete(engine)

    if backend != "postgresql":
        return  # SQLite runs one writing transaction at a time: no row locks to wait on
    # Two transactions that have both read the annotation before either writes: the second waits for the
    # first's row lock, then finds the version changed: with If-Match it fails instead of overwriting; without,
    # it writes the next version over the first's.
    sessionmaker = app.state.sessionmaker
    reviewer = await _user(sessionmaker, team.reviewer.id)
    for second_condition in (f'"{version}"', None):
        async with sessionmaker() as first, sessionmaker() as second:
            annotation_id = uuid.UUID(annotation["id"])
            seen_first = await annotation_service.access(first, annotation_id=annotation_id, user=reviewer)
            seen_second = await annotation_service.access(second, annotation_id=annotation_id, user=reviewer)
            await annotation_service.update(
                first,
                access=seen_first,
                user=reviewer,
                data=AnnotationUpdate(data={"by": "first"}),
                if_match=f'"{version}"',
            )
            late = asyncio.create_task(
                annotation_service.update(
                    second,
                    access=seen_second,
                    user=reviewer,
                    data=AnnotationUpdate(start_offset=0, end_offset=2),
                    if_match=second_condition,
                )
            )
            await asyncio.sleep(0.3)
            assert not late.done(), "the second writer should wait for the first's row lock"
            await first.commit()
            if second_condition is not None:
                with pytest.raises(PreconditionFailed):
                    await late
                await second.rollback()
                expected = (version + 1, {"by": "first"}, None)
            else:
                assert (await late).version == version + 2
                await second.commit()
                expected = (version + 2, {"by": "first"}, 0)
        final = (await client.get(url, headers=team.reviewer.headers)).json()
        assert (final["version"], final["data"], final["start_offset"]) == expected
        version = final["version"]
    history = (await _history(client, annotation["id"], team.reviewer, limit=100)).json()["items"]
    assert [(r["version"], r["data"], r["start_offset"]) for r in history[-3:]] == [
        (version - 2, {"by": "first"}, None),
        (version - 1, {"by": "first"}, None),
        (version, {"by": "first"}, 0),
    ]
    await assert_history_complete(engine)


async def test_a_delete_racing_an_edit_without_if_match(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    """Sent together without If-Match: the delete is made whatever the version; the edit is either made before
    it (and is in the history) or answered 409 `concurrent_change` (404 if it came too late to find the
    annotation): it is never reported done and then lost."""
    for _ in range(3):
        annotation = await api.annotate(team.items[0], team.annotator)
        url = A.format(annotation["id"])
        edit, delete = await asyncio.gather(
            client.patch(url, json={"data": {"edited": True}}, headers=team.reviewer.headers),
            client.delete(url, headers=team.reviewer.headers),
        )
        assert delete.status_code == 204, delete.text
        history = (await _history(client, annotation["id"], team.manager)).json()["items"]
        if edit.status_code == 200:
            assert [(r["action"], r["data"]) for r in history[1:]] == [
                ("updated", {"edited": True}),
                ("deleted", {"edited": True}),
            ]
        else:  # deleted between the edit's read and its write, or (rarely) before its read
            assert (edit.status_code, edit.json()["code"]) in {(409, "concurrent_change"), (404, "not_found")}
            assert [r["action"] for r in history] == ["created", "deleted"]


async def test_bulk_changes_racing_on_the_same_annotations(
    client: httpx.AsyncClient, team: Team, engine: AsyncEngine
) -> None:
    """Two bulk updates of the same annotations sent together: both are made, one after the other (each
    annotation two versions on), and each is in the history; a bulk delete beside a bulk update leaves both in
    the history or refuses the late one."""
    container = f"/api/v1/containers/{team.container['id']}"
    rows = [{"item_id": item["id"], "type": "sentiment", "data": {"label": "pos"}} for item in team.items[:3]]
    created = await client.post(f"{container}/annotations/bulk", json={"items": rows}, headers=team.annotator.headers)
    ids = [annotation["id"] for annotation in created.json()["items"]]
    for round_ in range(3):
        answers = await asyncio.gather(
            *(
                client.patch(
                    f"{container}/annotations/bulk",
                    json={"items": [{"id": annotation_id, "data": {"writer": name}} for annotation_id in ids]},
                    headers=team.reviewer.headers,
                )
                for name in "ab"
            )
        )
        assert [answer.status_code for answer in answers] == [200, 200], [answer.text for answer in answers]
        versions = sorted(answer.json()["items"][0]["version"] for answer in answers)
        assert versions == [2 + 2 * round_, 3 + 2 * round_]
    history = (await _history(client, ids[0], team.reviewer, limit=100)).json()["items"]
    assert [r["version"] for r in history] == list(range(1, 8))
    assert await assert_history_complete(engine) == 3

    update, delete = await asyncio.gather(
        client.patch(
            f"{container}/annotations/bulk",
            json={"items": [{"id": annotation_id, "data": {"writer": "late"}} for annotation_id in ids]},
            headers=team.reviewer.headers,
        ),
        client.post(f"{container}/annotations/bulk-delete", json={"ids": ids}, headers=team.reviewer.headers),
    )
    assert delete.status_code == 204, delete.text
    history = (await _history(client, ids[0], team.manager, limit=100)).json()["items"]
    if update.status_code == 200:
        assert [(r["action"], r["data"]) for r in history[-2:]] == [
            ("updated", {"writer": "late"}),
            ("deleted", {"writer": "late"}),
        ]
    else:
        problem(update, 422, "bulk_rows_invalid")
        assert [r["action"] for r in history[-2:]] == ["updated", "deleted"]


async def test_racing_writers_on_a_real_server_with_two_processes(database_url: str, tmp_path: Path) -> None:
    """The same races over real HTTP to `serve --prod` with two worker processes (gunicorn): pairs of PATCHes
    sent at once from separate connections. With the same If-Match exactly one wins and the other gets 412;
    without If-Match both are made, each a version in the history."""
    with production_server(database_url, tmp_path, RATE_LIMIT_ENABLED="false") as server:
        async with httpx.AsyncClient(base_url=f"{server.url}/api/v1", timeout=30) as http:
            email = f"race-{secrets.token_hex(4)}@example.org"
            assert (await http.post("/auth/register", json={"email": email, "password": PASSWORD})).is_success
            login = await http.post("/auth/jwt/login", data={"username": email, "password": PASSWORD})
            auth = {"Authorization": f"Bearer {login.json()['access_token']}"}

            async def made(url: str, body: dict[str, Any]) -> dict[str, Any]:
                response = await http.post(url, json=body, headers=auth)
                assert response.status_code == 201, response.text
                return dict(response.json())

            project = await made("/projects", {"name": "Race"})
            container = await made(f"/projects/{project['id']}/containers", {"name": "room"})
            item = await made(f"/containers/{container['id']}/items", {"external_id": "t1", "content": "hello"})
            annotation = await made(f"/items/{item['id']}/annotations", {"type": "thread", "data": {"n": 0}})
            url = f"/annotations/{annotation['id']}"

            async def both(condition: dict[str, str], round_: int) -> list[httpx.Response]:
                # One connection each, so that the two requests travel and are served side by side.
                async with (
                    httpx.AsyncClient(base_url=http.base_url, timeout=30) as a,
                    httpx.AsyncClient(base_url=http.base_url, timeout=30) as b,
                ):
                    return list(
                        await asyncio.gather(
                            *(
                                client.patch(
                                    url, json={"data": {"by": name, "round": round_}}, headers=auth | condition
                                )
                                for client, name in ((a, "a"), (b, "b"))
                            )
                        )
                    )

            version = 1
            for round_ in range(5):
                answers = await both({"If-Match": f'"{version}"'}, round_)
                assert sorted(answer.status_code for answer in answers) == [200, 412], [a.text for a in answers]
                version += 1
            for round_ in range(5):
                answers = await both({}, round_)
                assert [answer.status_code for answer in answers] == [200, 200], [a.text for a in answers]
                assert sorted(answer.json()["version"] for answer in answers) == [version + 1, version + 2]
                version += 2
            history = (await http.get(f"{url}/history", params={"limit": 100}, headers=auth)).json()["items"]
            assert [revision["version"] for revision in history] == list(range(1, version + 1))
            current = (await http.get(url, headers=auth)).json()
            assert (current["version"], current["data"]) == (version, history[-1]["data"])
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=30)


async def _user(sessionmaker: Any, user_id: str) -> User:
    async with sessionmaker() as session:
        user = await session.get(User, uuid.UUID(user_id))
        assert user is not None
        return user


async def test_bulk_updates_and_bulk_deletes_keep_history(
    client: httpx.AsyncClient, team: Team, engine: AsyncEngine
) -> None:
    container = f"/api/v1/containers/{team.container['id']}"
    rows = [{"item_id": item["id"], "type": "sentiment", "data": {"label": "pos"}} for item in team.items[:4]]
    created = await client.post(f"{container}/annotations/bulk", json={"items": rows}, headers=team.annotator.headers)
    assert created.status_code == 201, created.text
    ids = [annotation["id"] for annotation in created.json()["items"]]

    moved = await client.patch(
        f"{container}/annotations/bulk",
        json={"items": [{"id": annotation_id, "type": "stance"} for annotation_id in ids]},
        headers=team.annotator.headers,
    )
    assert moved.status_code == 200, moved.text
    assert await assert_history_complete(engine) == 4
    deleted = await client.post(
        f"{container}/annotations/bulk-delete", json={"ids": ids[:1]}, headers=team.manager.headers
    )
    assert deleted.status_code == 204, deleted.text
    history = (await _history(client, ids[0], team.manager)).json()["items"]
    assert [(r["version"], r["action"], r["type"]) for r in history] == [
        (1, "created", "sentiment"),
        (2, "updated", "stance"),
        (3, "deleted", "stance"),
    ]

    metadata = await client.patch(
        f"{container}/items/bulk",
        json={"items": [{"id": team.items[1]["id"], "metadata": {"user_id": "7"}}]},
        headers=team.manager.headers,
    )
    assert metadata.status_code == 200, metadata.text
    gone = await client.post(
        f"{container}/items/bulk-delete", json={"ids": [team.items[1]["id"]]}, headers=team.manager.headers
    )
    assert gone.status_code == 204, gone.text
    history = (await _history(client, ids[1], team.manager)).json()["items"]
    assert [r["action"] for r in history] == ["created", "updated", "deleted"]
    assert await assert_history_complete(engine) == 2
