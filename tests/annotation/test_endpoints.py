"""Annotations over HTTP: who may write which, offsets, ETags and If-Match, lists, bulk; and the database's own
guards (offset triggers, the same-container parent key) when the API is bypassed."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import Uuid, bindparam, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Actor, Api, QueryCounter, Team, problem

# Every item the `team` fixture makes has content "turn number N": 13 characters.
CONTENT_LENGTH = len("turn number 0")


def item_annotations(item: dict[str, Any]) -> str:
    return f"/api/v1/items/{item['id']}/annotations"


def container_annotations(container: dict[str, Any]) -> str:
    return f"/api/v1/containers/{container['id']}/annotations"


def bulk_url(container: dict[str, Any]) -> str:
    return f"/api/v1/containers/{container['id']}/annotations/bulk"


def one(annotation: dict[str, Any]) -> str:
    return f"/api/v1/annotations/{annotation['id']}"


async def ids_in(client: httpx.AsyncClient, url: str, actor: Actor, **params: Any) -> list[str]:
    response = await client.get(url, params={"limit": 500, **params}, headers=actor.headers)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["next_cursor"] is None
    return [annotation["id"] for annotation in body["items"]]


async def another_annotator(api: Api, team: Team) -> Actor:
    other = await api.user("annotator2")
    await api.add_member(team.project, team.owner, other, "annotator")
    return other


# --- create -------------------------------------------------------------------------------------------------


async def test_annotator_creates_an_annotation(client: httpx.AsyncClient, team: Team) -> None:
    item = team.items[0]
    body = {"type": "thread", "data": {"thread_id": "7"}, "start_offset": 0, "end_offset": 4}
    response = await client.post(item_annotations(item), json=body, headers=team.annotator.headers)

    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["location"] == f"/api/v1/annotations/{created['id']}"
    assert response.headers["etag"] == '"1"'
    assert created["version"] == 1
    assert created["created_by"] == team.annotator.id
    assert created["item_id"] == item["id"]
    assert created["container_id"] == team.container["id"]
    assert (created["type"], created["data"]) == ("thread", {"thread_id": "7"})
    assert (created["start_offset"], created["end_offset"]) == (0, 4)
    assert created["created_at"] == created["updated_at"]

    fetched = await client.get(response.headers["location"], headers=team.viewer.headers)
    assert fetched.status_code == 200
    assert fetched.json() == created
    assert fetched.headers["etag"] == '"1"'


async def test_only_annotators_and_above_may_create(client: httpx.AsyncClient, team: Team) -> None:
    url, body = item_annotations(team.items[0]), {"type": "thread", "data": {}}

    problem(await client.post(url, json=body, headers=team.viewer.headers), 403, "forbidden")
    problem(await client.post(url, json=body, headers=team.stranger.headers), 404, "not_found")
    problem(await client.post(url, json=body), 401, "not_authenticated")
    problem(await client.post("/api/v1/items/not-an-id/annotations", json=body, headers=team.owner.headers), 404)
    assert await ids_in(client, container_annotations(team.container), team.owner) == []

    for actor in (team.annotator, team.reviewer, team.manager, team.owner):
        response = await client.post(url, json=body, headers=actor.headers)
        assert response.status_code == 201, response.text
        assert response.json()["created_by"] == actor.id


INVALID_CREATES: list[tuple[dict[str, Any], str]] = [
    ({"start_offset": 0}, "validation_failed"),
    ({"end_offset": 3}, "validation_failed"),
    ({"start_offset": 5, "end_offset": 5}, "validation_failed"),
    ({"start_offset": 6, "end_offset": 2}, "validation_failed"),
    ({"start_offset": -1, "end_offset": 2}, "validation_failed"),
    ({"start_offset": 0, "end_offset": CONTENT_LENGTH + 1}, "offsets_out_of_range"),
    ({"start_offset": 3, "end_offset": 2**40}, "validation_failed"),
    ({"start_offset": "a", "end_offset": 2}, "validation_failed"),
    ({"data": [1, 2]}, "validation_failed"),
    ({"data": "text"}, "validation_failed"),
    ({"data": None}, "validation_failed"),
    ({"type": "Not A Slug"}, "validation_failed"),
    ({"type": ""}, "validation_failed"),
    ({"type": None}, "validation_failed"),
    ({"created_by": "someone-else"}, "validation_failed"),
    ({"version": 5}, "validation_failed"),
]


async def test_invalid_annotations_are_refused_and_a_valid_span_accepted(client: httpx.AsyncClient, team: Team) -> None:
    url = item_annotations(team.items[0])
    for fields, code in INVALID_CREATES:
        response = await client.post(url, json={"type": "thread", "data": {}, **fields}, headers=team.annotator.headers)
        assert response.status_code == 422, (fields, response.text)
        found = problem(response, 422, code)
        assert found["errors"], found
    assert await ids_in(client, container_annotations(team.container), team.owner) == []

    body = {"type": "span", "start_offset": 5, "end_offset": CONTENT_LENGTH}
    response = await client.post(url, json=body, headers=team.annotator.headers)
    assert response.status_code == 201, response.text
    assert (response.json()["start_offset"], response.json()["end_offset"]) == (5, CONTENT_LENGTH)


async def test_offsets_count_characters_not_bytes(client: httpx.AsyncClient, team: Team) -> None:
    content = "héllo wörld ✓"  # 13 characters, 17 bytes in UTF-8
    response = await client.post(
        f"/api/v1/containers/{team.container['id']}/items",
        json={"external_id": "unicode", "content": content},
        headers=team.owner.headers,
    )
    assert response.status_code == 201, response.text
    item = response.json()
    url = item_annotations(item)
    whole = {"type": "span", "start_offset": 0, "end_offset": len(content)}
    assert (await client.post(url, json=whole, headers=team.annotator.headers)).status_code == 201
    past = {"type": "span", "start_offset": 0, "end_offset": len(content) + 1}
    problem(await client.post(url, json=past, headers=team.annotator.headers), 422, "offsets_out_of_range")


# --- read, update, delete with ETags --------------------------------------------------------------------------


async def test_get_is_hidden_from_strangers_and_anonymous(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    annotation = await api.annotate(team.items[0], team.annotator)
    problem(await client.get(one(annotation), headers=team.stranger.headers), 404, "not_found")
    problem(await client.get(one(annotation)), 401, "not_authenticated")
    problem(await client.get("/api/v1/annotations/garbage", headers=team.owner.headers), 404, "not_found")
    problem(await client.get(f"/api/v1/annotations/{uuid.uuid4()}", headers=team.owner.headers), 404, "not_found")
    problem(await client.patch(one(annotation), json={"data": {}}, headers=team.stranger.headers), 404, "not_found")
    problem(await client.delete(one(annotation), headers=team.stranger.headers), 404, "not_found")
    assert (await client.get(one(annotation), headers=team.annotator.headers)).json() == annotation


async def test_patch_bumps_the_version_and_honours_if_match(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    annotation = await api.annotate(team.items[0], team.annotator, data={"thread_id": "1"})
    url, headers = one(annotation), team.annotator.headers

    read = await client.get(url, headers=headers)
    assert read.headers["etag"] == '"1"'

    changed = await client.patch(url, json={"data": {"thread_id": "2"}}, headers={**headers, "If-Match": '"1"'})
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2
    assert changed.json()["data"] == {"thread_id": "2"}
    assert changed.headers["etag"] == '"2"'
    assert changed.json()["updated_at"] >= annotation["updated_at"]
    assert changed.json()["created_by"] == team.annotator.id

    for stale in ('"1"', 'W/"2"', '"3"', "garbage"):
        refused = await client.patch(url, json={"data": {"thread_id": "lost"}}, headers={**headers, "If-Match": stale})
        problem(refused, 412, "precondition_failed")
    now = await client.get(url, headers=headers)
    assert now.json()["version"] == 2
    assert now.json()["data"] == {"thread_id": "2"}
    assert now.headers["etag"] == '"2"'

    current = await client.patch(url, json={"type": "topic"}, headers={**headers, "If-Match": '"2"'})
    assert current.status_code == 200, current.text
    assert (current.json()["version"], current.json()["type"]) == (3, "topic")
    assert current.headers["etag"] == '"3"'


async def test_patch_validates_offsets_and_changes_nothing_when_refused(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    annotation = await api.annotate(team.items[0], team.annotator, start_offset=0, end_offset=4)
    url, headers = one(annotation), team.annotator.headers

    problem(await client.patch(url, json={"end_offset": 8}, headers=headers), 422, "validation_failed")
    problem(await client.patch(url, json={"start_offset": 3, "end_offset": 2}, headers=headers), 422)
    problem(await client.patch(url, json={"type": None}, headers=headers), 422, "validation_failed")
    problem(await client.patch(url, json={"data": ["x"]}, headers=headers), 422, "validation_failed")
    problem(await client.patch(url, json={"version": 7}, headers=headers), 422, "validation_failed")
    past = {"start_offset": 0, "end_offset": CONTENT_LENGTH + 1}
    problem(await client.patch(url, json=past, headers=headers), 422, "offsets_out_of_range")
    assert (await client.get(url, headers=headers)).json() == annotation

    moved = await client.patch(url, json={"start_offset": 2, "end_offset": CONTENT_LENGTH}, headers=headers)
    assert moved.status_code == 200, moved.text
    assert (moved.json()["start_offset"], moved.json()["end_offset"], moved.json()["version"]) == (
        2,
        CONTENT_LENGTH,
        2,
    )
    cleared = await client.patch(url, json={"start_offset": None, "end_offset": None}, headers=headers)
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["start_offset"], cleared.json()["end_offset"]) == (None, None)


async def test_delete_honours_if_match(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    annotation = await api.annotate(team.items[0], team.annotator)
    url, headers = one(annotation), team.annotator.headers
    assert (await client.patch(url, json={"data": {"v": 2}}, headers=headers)).status_code == 200

    problem(await client.delete(url, headers={**headers, "If-Match": '"1"'}), 412, "precondition_failed")
    assert (await client.get(url, headers=headers)).status_code == 200

    deleted = await client.delete(url, headers={**headers, "If-Match": '"2"'})
    assert deleted.status_code == 204
    assert deleted.content == b""
    problem(await client.get(url, headers=headers), 404, "not_found")
    problem(await client.delete(url, headers=headers), 404, "not_found")


async def test_annotators_may_not_change_other_peoples_annotations(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    other = await another_annotator(api, team)
    annotation = await api.annotate(team.items[0], team.annotator, data={"by": "annotator"})
    url = one(annotation)

    problem(await client.patch(url, json={"data": {"by": "other"}}, headers=other.headers), 403, "forbidden")
    problem(await client.delete(url, headers=other.headers), 403, "forbidden")
    problem(await client.patch(url, json={"data": {"by": "viewer"}}, headers=team.viewer.headers), 403, "forbidden")
    problem(await client.delete(url, headers=team.viewer.headers), 403, "forbidden")
    assert (await client.get(url, headers=other.headers)).json() == annotation

    reviewed = await client.patch(url, json={"data": {"by": "reviewer"}}, headers=team.reviewer.headers)
    assert reviewed.status_code == 200, reviewed.text
    assert reviewed.json()["data"] == {"by": "reviewer"}
    assert reviewed.json()["version"] == 2
    assert reviewed.json()["created_by"] == team.annotator.id

    assert (await client.delete(url, headers=team.manager.headers)).status_code == 204
    problem(await client.get(url, headers=team.annotator.headers), 404, "not_found")

    reviewers = await api.annotate(team.items[1], team.reviewer)
    problem(await client.delete(one(reviewers), headers=team.annotator.headers), 403, "forbidden")
    assert (await client.delete(one(reviewers), headers=team.owner.headers)).status_code == 204
    assert await ids_in(client, container_annotations(team.container), team.owner) == []


# --- lists ----------------------------------------------------------------------------------------------------


async def test_lists_per_item_and_per_container_with_filters(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    first, second = team.items[0], team.items[1]
    a1 = await api.annotate(first, team.annotator, type="thread")
    a2 = await api.annotate(second, team.annotator, type="topic")
    a3 = await api.annotate(first, team.reviewer, type="topic")
    a4 = await api.annotate(first, team.annotator, type="thread")
    elsewhere = await api.container(team.project, team.owner, name="elsewhere")
    (foreign_item,) = await api.items(elsewhere, team.owner, 1)
    await api.annotate(foreign_item, team.annotator, type="thread")

    by_item, by_container, viewer = item_annotations(first), container_annotations(team.container), team.viewer
    assert await ids_in(client, by_item, viewer) == [a1["id"], a3["id"], a4["id"]]
    assert await ids_in(client, by_item, viewer, type="thread") == [a1["id"], a4["id"]]
    assert await ids_in(client, by_item, viewer, created_by=team.reviewer.id) == [a3["id"]]
    assert await ids_in(client, by_container, viewer) == [a1["id"], a2["id"], a3["id"], a4["id"]]
    assert await ids_in(client, by_container, viewer, type="topic") == [a2["id"], a3["id"]]
    assert await ids_in(client, by_container, viewer, created_by=team.annotator.id) == [a1["id"], a2["id"], a4["id"]]
    assert await ids_in(client, by_container, viewer, created_by=team.reviewer.id, type="topic") == [a3["id"]]
    assert await ids_in(client, by_container, viewer, created_by=team.reviewer.id, type="thread") == []
    assert await ids_in(client, by_container, viewer, type="nothing_like_this") == []
    assert await ids_in(client, by_container, viewer, created_by=team.owner.id) == []

    listed = (await client.get(by_container, headers=viewer.headers)).json()["items"]
    assert listed[0] == a1

    counted = await client.get(by_container, params={"include_total": "true", "type": "thread"}, headers=viewer.headers)
    assert counted.json()["total"] == 2
    assert "total" not in (await client.get(by_container, headers=viewer.headers)).json()

    # An author filter that is not a user id cannot match anything: an empty page, not an error.
    for url in (by_item, by_container):
        response = await client.get(url, params={"created_by": "not-a-user-id"}, headers=viewer.headers)
        assert response.status_code == 200, response.text
        assert response.json() == {"items": [], "next_cursor": None}
        assert "link" not in response.headers
        counted = await client.get(
            url, params={"created_by": "' OR 1=1 --", "include_total": "true"}, headers=viewer.headers
        )
        assert counted.json() == {"items": [], "next_cursor": None, "total": 0}


async def test_lists_are_hidden_from_strangers_and_check_their_input(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    await api.annotate(team.items[0], team.annotator)
    for url in (item_annotations(team.items[0]), container_annotations(team.container)):
        problem(await client.get(url, headers=team.stranger.headers), 404, "not_found")
        problem(await client.get(url), 401, "not_authenticated")
        problem(await client.get(url, params={"type": "Bad Type"}, headers=team.owner.headers), 422)
        problem(await client.get(url, params={"limit": 0}, headers=team.owner.headers), 422, "validation_failed")
        problem(await client.get(url, params={"limit": 501}, headers=team.owner.headers), 422, "validation_failed")
        problem(await client.get(url, params={"cursor": "garbage!"}, headers=team.owner.headers), 400, "invalid_cursor")
    problem(await client.get("/api/v1/containers/garbage/annotations", headers=team.owner.headers), 404, "not_found")


async def test_pagination_walks_every_annotation_once(client: httpx.AsyncClient, team: Team) -> None:
    rows = [
        {"item_external_id": team.items[n % 5]["external_id"], "type": "thread", "data": {"n": n}} for n in range(120)
    ]
    created = await client.post(bulk_url(team.container), json={"items": rows}, headers=team.annotator.headers)
    assert created.status_code == 201, created.text
    expected = [annotation["id"] for annotation in created.json()["items"]]

    seen: list[str] = []
    url: str | None = container_annotations(team.container) + "?include_total=true"
    pages = 0
    while url is not None:
        response = await client.get(url, headers=team.viewer.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == 120
        seen += [annotation["id"] for annotation in body["items"]]
        pages += 1
        if body["next_cursor"] is None:
            assert "link" not in response.headers
            url = None
        else:
            assert len(body["items"]) == 50
            link = response.headers["link"]
            assert link.endswith('>; rel="next"')
            url = link[1 : link.index(">")]
            assert url.startswith("http://testserver/api/v1/containers/")
            assert httpx.URL(url).params["cursor"] == body["next_cursor"]
    assert pages == 3
    assert seen == expected

    per_item = item_annotations(team.items[0])
    walked: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 7, **({"cursor": cursor} if cursor else {})}
        body = (await client.get(per_item, params=params, headers=team.viewer.headers)).json()
        walked += [annotation["id"] for annotation in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert walked == expected[0::5]


async def test_list_issues_a_constant_number_of_queries(
    client: httpx.AsyncClient, team: Team, count_queries: QueryCounter
) -> None:
    rows = [{"item_id": team.items[n % 5]["id"], "type": "thread"} for n in range(30)]
    created = await client.post(bulk_url(team.container), json={"items": rows}, headers=team.annotator.headers)
    assert created.status_code == 201, created.text

    counts = {}
    for url in (container_annotations(team.container), item_annotations(team.items[0])):
        for limit in (5, 200):
            before = count_queries.count
            response = await client.get(url, params={"limit": limit}, headers=team.viewer.headers)
            assert response.status_code == 200
            counts[url, limit] = count_queries.count - before
            assert len(response.json()["items"]) == min(limit, 30 if "containers" in url else 6)
    for url in (container_annotations(team.container), item_annotations(team.items[0])):
        assert counts[url, 5] == counts[url, 200], counts
        assert counts[url, 5] > 0


# --- bulk -----------------------------------------------------------------------------------------------------


async def test_bulk_create_by_external_id_and_by_id(client: httpx.AsyncClient, team: Team) -> None:
    rows = [
        {"item_external_id": team.items[0]["external_id"], "type": "thread", "data": {"thread_id": "1"}},
        {"item_id": team.items[1]["id"], "type": "topic", "start_offset": 0, "end_offset": CONTENT_LENGTH},
        {"item_external_id": team.items[1]["external_id"], "type": "thread"},
    ]
    response = await client.post(bulk_url(team.container), json={"items": rows}, headers=team.annotator.headers)

    assert response.status_code == 201, response.text
    assert response.headers["location"] == container_annotations(team.container)
    created = response.json()["items"]
    assert [(a["item_id"], a["type"]) for a in created] == [
        (team.items[0]["id"], "thread"),
        (team.items[1]["id"], "topic"),
        (team.items[1]["id"], "thread"),
    ]
    assert all(a["created_by"] == team.annotator.id and a["version"] == 1 for a in created)
    assert created[0]["data"] == {"thread_id": "1"}
    assert (created[1]["start_offset"], created[1]["end_offset"]) == (0, CONTENT_LENGTH)
    assert await ids_in(client, container_annotations(team.container), team.owner) == [a["id"] for a in created]
    fetched = await client.get(one(created[1]), headers=team.owner.headers)
    assert fetched.json() == created[1]


async def test_bulk_with_bad_rows_writes_nothing_and_names_each_row(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    elsewhere = await api.container(team.project, team.owner, name="elsewhere")
    (foreign_item,) = await api.items(elsewhere, team.owner, 1)
    rows = [
        {"item_id": team.items[0]["id"], "type": "thread"},
        {"item_id": foreign_item["id"], "type": "thread"},
        {"item_external_id": "no-such-turn", "type": "thread"},
        {"item_external_id": team.items[2]["external_id"], "type": "span", "start_offset": 0, "end_offset": 99},
        {"item_id": str(uuid.uuid4()), "type": "thread"},
        {"item_external_id": team.items[3]["external_id"], "type": "thread"},
    ]
    response = await client.post(bulk_url(team.container), json={"items": rows}, headers=team.annotator.headers)

    body = problem(response, 422, "bulk_rows_invalid")
    locs = [error["loc"] for error in body["errors"]]
    assert locs == [
        ["body", "items", 1, "item_id"],
        ["body", "items", 2, "item_external_id"],
        ["body", "items", 3, "end_offset"],
        ["body", "items", 4, "item_id"],
    ]
    assert [error["type"] for error in body["errors"]][2] == "offsets_out_of_range"
    for container in (team.container, elsewhere):
        assert await ids_in(client, container_annotations(container), team.owner) == []


async def test_bulk_refuses_invalid_requests_and_writes_nothing(client: httpx.AsyncClient, team: Team) -> None:
    url, valid = bulk_url(team.container), {"item_external_id": "t00001", "type": "thread"}
    invalid_rows = [
        {"type": "thread"},
        {"item_id": team.items[0]["id"], "item_external_id": "t00000", "type": "thread"},
        {"item_id": "not-a-uuid", "type": "thread"},
        {"item_external_id": "", "type": "thread"},
        {"item_external_id": "t00000", "type": "thread", "start_offset": 4},
        {"item_external_id": "t00000", "type": "thread", "start_offset": 4, "end_offset": 4},
        {"item_external_id": "t00000", "type": "thread", "data": [1]},
        {"item_external_id": "t00000", "type": "Thread"},
        {"item_external_id": "t00000", "type": "thread", "created_by": "someone"},
    ]
    for row in invalid_rows:
        response = await client.post(url, json={"items": [valid, row]}, headers=team.annotator.headers)
        assert response.status_code == 422, (row, response.text)
        body = problem(response, 422, "validation_failed")
        assert all(error["loc"][:3] == ["body", "items", 1] for error in body["errors"]), body

    rows = [valid]
    problem(await client.post(url, json={"items": rows}, headers=team.viewer.headers), 403, "forbidden")
    problem(await client.post(url, json={"items": rows}, headers=team.stranger.headers), 404, "not_found")
    problem(await client.post(url, json={"items": rows}), 401, "not_authenticated")
    problem(await client.post(url, json={"items": []}, headers=team.annotator.headers), 422, "validation_failed")
    problem(await client.post(url, json=rows, headers=team.annotator.headers), 422, "validation_failed")
    malformed = {**team.annotator.headers, "content-type": "application/json"}
    problem(await client.post(url, content=b'{"items": [', headers=malformed), 400, "malformed_json")
    problem(
        await client.post(url, content=b"items", headers={**team.annotator.headers, "content-type": "text/plain"}), 415
    )
    assert await ids_in(client, container_annotations(team.container), team.owner) == []


# --- the database's own guards --------------------------------------------------------------------------------

_INSERT_ANNOTATION = text(
    "INSERT INTO annotations (id, item_id, container_id, type, data, start_offset, end_offset, created_by, version,"
    " created_at, updated_at) VALUES (:id, :item_id, :container_id, 'span', '{}', :start, :end, NULL, 1,"
    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
).bindparams(bindparam("id", type_=Uuid()), bindparam("item_id", type_=Uuid()), bindparam("container_id", type_=Uuid()))

_INSERT_ITEM = text(
    "INSERT INTO items (id, container_id, external_id, content, metadata, sequence, parent_id, created_at, updated_at)"
    " VALUES (:id, :container_id, :external_id, 'raw', '{}', 1000, :parent_id, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
).bindparams(
    bindparam("id", type_=Uuid()), bindparam("container_id", type_=Uuid()), bindparam("parent_id", type_=Uuid())
)

_UPDATE_CONTENT = text("UPDATE items SET content = :content WHERE id = :id").bindparams(bindparam("id", type_=Uuid()))


def annotation_row(item: dict[str, Any], end: int) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "item_id": uuid.UUID(item["id"]),
        "container_id": uuid.UUID(item["container_id"]),
        "start": 0,
        "end": end,
    }


async def test_database_refuses_an_annotation_past_the_content(
    client: httpx.AsyncClient, engine: AsyncEngine, team: Team
) -> None:
    item = team.items[0]
    with pytest.raises(IntegrityError, match="past its item"):
        async with engine.begin() as connection:
            await connection.execute(_INSERT_ANNOTATION, annotation_row(item, CONTENT_LENGTH + 1))
    assert await ids_in(client, item_annotations(item), team.owner) == []

    fits = annotation_row(item, CONTENT_LENGTH)
    async with engine.begin() as connection:
        await connection.execute(_INSERT_ANNOTATION, fits)
    assert await ids_in(client, item_annotations(item), team.owner) == [str(fits["id"])]

    with pytest.raises(IntegrityError, match="past its item"):
        async with engine.begin() as connection:
            await connection.execute(
                text("UPDATE annotations SET end_offset = :end WHERE id = :id").bindparams(
                    bindparam("id", type_=Uuid())
                ),
                {"id": fits["id"], "end": CONTENT_LENGTH + 5},
            )
    fetched = await client.get(f"/api/v1/annotations/{fits['id']}", headers=team.owner.headers)
    assert fetched.json()["end_offset"] == CONTENT_LENGTH


async def test_database_refuses_content_shorter_than_its_annotations(
    client: httpx.AsyncClient, api: Api, engine: AsyncEngine, team: Team
) -> None:
    item = team.items[0]
    await api.annotate(item, team.annotator, start_offset=5, end_offset=CONTENT_LENGTH)

    with pytest.raises(IntegrityError, match="before its annotations"):
        async with engine.begin() as connection:
            await connection.execute(_UPDATE_CONTENT, {"id": uuid.UUID(item["id"]), "content": "turn"})
    assert (await client.get(f"/api/v1/items/{item['id']}", headers=team.owner.headers)).json()["content"] == (
        "turn number 0"
    )

    async with engine.begin() as connection:
        await connection.execute(_UPDATE_CONTENT, {"id": uuid.UUID(item["id"]), "content": "turn number 0, longer"})
    assert (await client.get(f"/api/v1/items/{item['id']}", headers=team.owner.headers)).json()["content"] == (
        "turn number 0, longer"
    )


async def test_database_refuses_a_parent_from_another_container_at_commit(
    client: httpx.AsyncClient, api: Api, engine: AsyncEngine, team: Team
) -> None:
    elsewhere = await api.container(team.project, team.owner, name="elsewhere")
    (foreign_parent,) = await api.items(elsewhere, team.owner, 1)
    container_id = uuid.UUID(team.container["id"])
    orphan = {"id": uuid.uuid4(), "container_id": container_id, "external_id": "raw-1"}

    async with engine.connect() as connection:
        await connection.begin()
        # The key is deferred: the statement itself passes, the commit does not.
        await connection.execute(_INSERT_ITEM, {**orphan, "parent_id": uuid.UUID(foreign_parent["id"])})
        with pytest.raises(IntegrityError):
            await connection.commit()
        await connection.rollback()
    items = await client.get(f"/api/v1/containers/{team.container['id']}/items", headers=team.owner.headers)
    assert [item["external_id"] for item in items.json()["items"]] == [item["external_id"] for item in team.items]

    async with engine.begin() as connection:
        await connection.execute(_INSERT_ITEM, {**orphan, "parent_id": uuid.UUID(team.items[0]["id"])})
    fetched = await client.get(f"/api/v1/items/{orphan['id']}", headers=team.owner.headers)
    assert fetched.status_code == 200, fetched.text
    assert fetched.json()["parent_id"] == team.items[0]["id"]


async def test_bulk_update_moves_annotations_under_the_single_rules(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    mine = [await api.annotate(item, team.annotator) for item in team.items[:2]]
    theirs = await api.annotate(team.items[2], team.reviewer)
    url = f"/api/v1/containers/{team.container['id']}/annotations/bulk"
    rows = [{"id": a["id"], "type": "topic"} for a in (*mine, theirs)]
    body = problem(await client.patch(url, json={"items": rows}, headers=team.annotator.headers), 403)
    assert [error["loc"] for error in body["errors"]] == [["body", "items", 2, "id"]]
    unknown = [{"id": str(uuid.uuid4()), "data": {}}]
    problem(await client.patch(url, json={"items": unknown}, headers=team.annotator.headers), 422, "bulk_rows_invalid")

    moved = await client.patch(url, json={"items": rows[:2]}, headers=team.annotator.headers)
    assert moved.status_code == 200, moved.text
    changed = [(a["type"], a["version"], a["data"]) for a in moved.json()["items"]]
    assert changed == [("topic", 2, {"thread_id": "1"})] * 2
    by_reviewer = await client.patch(url, json={"items": [rows[2]]}, headers=team.reviewer.headers)
    assert by_reviewer.json()["items"][0]["type"] == "topic"


async def test_bulk_delete_annotations_is_all_or_nothing(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    mine = await api.annotate(team.items[0], team.annotator)
    theirs = await api.annotate(team.items[1], team.reviewer)
    url = f"/api/v1/containers/{team.container['id']}/annotations/bulk-delete"
    problem(await client.post(url, json={"ids": [mine["id"], theirs["id"]]}, headers=team.annotator.headers), 403)
    assert (await client.post(url, json={"ids": [mine["id"]]}, headers=team.annotator.headers)).status_code == 204
    listed = await client.get(container_annotations(team.container), headers=team.viewer.headers)
    assert [a["id"] for a in listed.json()["items"]] == [theirs["id"]]
