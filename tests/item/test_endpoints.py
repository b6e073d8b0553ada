"""Items: single and bulk writes, parents, schemas, pagination, and the cost of a page."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import Api, QueryCounter, Team, problem

SCHEMA = {
    "type": "object",
    "properties": {"speaker": {"type": "string"}},
    "required": ["speaker"],
}


def items_url(container: dict[str, Any]) -> str:
    return f"/api/v1/containers/{container['id']}/items"


def item_url(item: dict[str, Any]) -> str:
    return f"/api/v1/items/{item['id']}"


async def all_items(client: httpx.AsyncClient, container: dict[str, Any], headers: dict[str, str]) -> list[Any]:
    response = await client.get(items_url(container), params={"limit": 500}, headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    return list(response.json()["items"])


async def item_count(client: httpx.AsyncClient, container: dict[str, Any], headers: dict[str, str]) -> int:
    response = await client.get(f"/api/v1/containers/{container['id']}", headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["item_count"])


async def create(
    client: httpx.AsyncClient, container: dict[str, Any], headers: dict[str, str], **fields: Any
) -> httpx.Response:
    return await client.post(items_url(container), json=fields, headers=headers)


# Single items


async def test_create_returns_201_location_and_the_item(api: Api, team: Team) -> None:
    response = await create(
        api.client,
        team.container,
        team.owner.headers,
        external_id="VAC_R10_100",
        content="Vaccines work.",
        metadata={"speaker": "A", "tags": [1, 2]},
    )

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"/api/v1/items/{body['id']}"
    assert body["container_id"] == team.container["id"]
    assert (body["external_id"], body["content"], body["metadata"], body["parent_id"]) == (
        "VAC_R10_100",
        "Vaccines work.",
        {"speaker": "A", "tags": [1, 2]},
        None,
    )
    fetched = await api.client.get(response.headers["Location"], headers=team.viewer.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_sequence_defaults_to_after_the_last_item(api: Api, team: Team) -> None:
    empty = await api.container(team.project, team.owner)
    sequences = []
    for name in ("first", "second", "third"):
        response = await create(api.client, empty, team.owner.headers, external_id=name)
        assert response.status_code == 201, response.text
        sequences.append(response.json()["sequence"])

    assert sequences == [0, 1, 2]
    assert [item["external_id"] for item in await all_items(api.client, empty, team.owner.headers)] == [
        "first",
        "second",
        "third",
    ]
    following = await create(api.client, team.container, team.owner.headers, external_id="after-team")
    assert following.json()["sequence"] == max(item["sequence"] for item in team.items) + 1


async def test_explicit_sequence_and_list_in_sequence_order(api: Api, team: Team) -> None:
    container = await api.container(team.project, team.owner)
    made = {}
    for external_id, sequence in [("late", 100), ("early", 10), ("auto", None), ("middle", 50), ("zero", 0)]:
        fields: dict[str, Any] = {"external_id": external_id}
        if sequence is not None:
            fields["sequence"] = sequence
        response = await create(api.client, container, team.owner.headers, **fields)
        assert response.status_code == 201, response.text
        made[external_id] = response.json()["sequence"]

    assert made == {"late": 100, "early": 10, "auto": 101, "middle": 50, "zero": 0}
    listed = await all_items(api.client, container, team.viewer.headers)
    assert [item["external_id"] for item in listed] == ["zero", "early", "middle", "late", "auto"]


async def test_duplicate_external_id_is_409_and_writes_nothing(api: Api, team: Team) -> None:
    before = await all_items(api.client, team.container, team.owner.headers)

    response = await create(api.client, team.container, team.owner.headers, external_id="t00002", content="again")

    problem(response, 409, "duplicate_external_id")
    assert await all_items(api.client, team.container, team.owner.headers) == before
    assert await item_count(api.client, team.container, team.owner.headers) == 5
    other = await api.container(team.project, team.owner)
    elsewhere = await create(api.client, other, team.owner.headers, external_id="t00002")
    assert elsewhere.status_code == 201, elsewhere.text


async def test_parent_from_another_container_is_422(api: Api, team: Team) -> None:
    other = await api.container(team.project, team.owner)
    foreign = (await api.items(other, team.owner, 1))[0]

    response = await create(api.client, team.container, team.owner.headers, external_id="x", parent_id=foreign["id"])
    problem(response, 422, "parent_not_found")
    unknown = "0193a5e2-7c1d-7b3e-9f00-2a4c6d8e0f12"
    response = await create(api.client, team.container, team.owner.headers, external_id="x", parent_id=unknown)
    problem(response, 422, "parent_not_found")
    response = await create(
        api.client, team.container, team.owner.headers, external_id="x", parent_external_id="no-such-turn"
    )
    problem(response, 422, "parent_not_found")

    assert await item_count(api.client, team.container, team.owner.headers) == 5
    assert len(await all_items(api.client, team.container, team.owner.headers)) == 5


async def test_parent_by_id_or_external_id(api: Api, team: Team) -> None:
    by_external = await create(
        api.client, team.container, team.owner.headers, external_id="reply", parent_external_id="t00001"
    )
    assert by_external.status_code == 201, by_external.text
    assert by_external.json()["parent_id"] == team.items[1]["id"]

    by_id = await create(
        api.client, team.container, team.owner.headers, external_id="reply2", parent_id=by_external.json()["id"]
    )
    assert by_id.status_code == 201, by_id.text
    assert by_id.json()["parent_id"] == by_external.json()["id"]

    both = await create(
        api.client,
        team.container,
        team.owner.headers,
        external_id="reply3",
        parent_id=team.items[0]["id"],
        parent_external_id="t00000",
    )
    problem(both, 422, "validation_failed")


async def test_metadata_must_match_the_item_schema(api: Api, team: Team) -> None:
    typed = await api.container(team.project, team.owner, item_schema=SCHEMA)

    for metadata in [{}, {"speaker": 7}, {"speaker": None}]:
        response = await create(api.client, typed, team.owner.headers, external_id="x", metadata=metadata)
        body = problem(response, 422, "metadata_invalid")
        assert body["errors"][0]["loc"] == ["body", "metadata"]
    assert await all_items(api.client, typed, team.owner.headers) == []
    assert await item_count(api.client, typed, team.owner.headers) == 0

    good = await create(api.client, typed, team.owner.headers, external_id="x", metadata={"speaker": "B"})
    assert good.status_code == 201, good.text


async def test_bad_item_fields_are_422_and_write_nothing(api: Api, team: Team) -> None:
    bad: list[dict[str, Any]] = [
        {"external_id": ""},
        {"external_id": "   "},
        {"external_id": " padded"},
        {"external_id": "e" * 256},
        {"external_id": 17},
        {"content": "no external id"},
        {"external_id": "ok", "content": "c" * 1_000_001},
        {"external_id": "ok", "content": 5},
        {"external_id": "ok", "metadata": [1]},
        {"external_id": "ok", "metadata": "x"},
        {"external_id": "ok", "sequence": -1},
        {"external_id": "ok", "sequence": "first"},
        {"external_id": "ok", "parent_id": "not-an-id"},
        {"external_id": "ok", "container_id": team.container["id"]},
        {"external_id": "ok", "id": team.items[0]["id"]},
    ]
    for fields in bad:
        response = await create(api.client, team.container, team.owner.headers, **fields)
        assert response.status_code == 422, (fields.keys(), response.text)
        problem(response, 422)

    assert await item_count(api.client, team.container, team.owner.headers) == 5
    assert len(await all_items(api.client, team.container, team.owner.headers)) == 5
    longest = await create(api.client, team.container, team.owner.headers, external_id="e" * 255, content="c" * 1000)
    assert longest.status_code == 201, longest.text


async def test_content_of_one_million_characters_is_accepted(api: Api, team: Team) -> None:
    response = await create(api.client, team.container, team.owner.headers, external_id="big", content="é" * 1_000_000)
    assert response.status_code == 201, response.text
    fetched = await api.client.get(item_url(response.json()), headers=team.owner.headers)
    assert len(fetched.json()["content"]) == 1_000_000


async def test_patch_content_metadata_and_parent(api: Api, team: Team) -> None:
    first, second = team.items[0], team.items[1]
    url = item_url(second)

    response = await api.client.patch(
        url,
        json={"content": "edited", "metadata": {"speaker": "C"}, "parent_id": first["id"]},
        headers=team.manager.headers,
    )
    assert response.status_code == 200, response.text
    assert (response.json()["content"], response.json()["metadata"], response.json()["parent_id"]) == (
        "edited",
        {"speaker": "C"},
        first["id"],
    )
    assert response.json()["external_id"] == second["external_id"]

    detached = await api.client.patch(url, json={"parent_id": None}, headers=team.owner.headers)
    assert detached.status_code == 200, detached.text
    assert detached.json()["parent_id"] is None

    by_external = await api.client.patch(url, json={"parent_external_id": "t00004"}, headers=team.owner.headers)
    assert by_external.status_code == 200, by_external.text
    assert by_external.json()["parent_id"] == team.items[4]["id"]

    fetched = (await api.client.get(url, headers=team.viewer.headers)).json()
    assert (fetched["content"], fetched["metadata"], fetched["parent_id"]) == (
        "edited",
        {"speaker": "C"},
        team.items[4]["id"],
    )


async def test_patch_refusals_change_nothing(api: Api, team: Team) -> None:
    other = await api.container(team.project, team.owner)
    foreign = (await api.items(other, team.owner, 1))[0]
    typed = await api.container(team.project, team.owner, item_schema=SCHEMA)
    typed_item = (await api.items(typed, team.owner, 1, metadata={"speaker": "A"}))[0]
    item = team.items[2]
    url = item_url(item)

    for body, code in [
        ({"parent_id": item["id"]}, "parent_not_found"),
        ({"parent_external_id": item["external_id"]}, "parent_not_found"),
        ({"parent_id": foreign["id"]}, "parent_not_found"),
        ({"parent_external_id": "nobody"}, "parent_not_found"),
        ({"external_id": ""}, "validation_failed"),
        ({"external_id": None}, "validation_failed"),
        ({"content": None}, "validation_failed"),
        ({"content": "c" * 1_000_001}, "validation_failed"),
        ({"metadata": [1]}, "validation_failed"),
        ({"container_id": other["id"]}, "validation_failed"),
    ]:
        problem(await api.client.patch(url, json=body, headers=team.owner.headers), 422, code)
    problem(
        await api.client.patch(url, json={"external_id": "t00003"}, headers=team.owner.headers),
        409,
        "duplicate_external_id",
    )
    problem(
        await api.client.patch(item_url(typed_item), json={"metadata": {"speaker": 1}}, headers=team.owner.headers),
        422,
        "metadata_invalid",
    )

    assert (await api.client.get(url, headers=team.owner.headers)).json() == item
    assert (await api.client.get(item_url(typed_item), headers=team.owner.headers)).json() == typed_item


async def test_patch_content_shorter_than_an_annotation_is_409(api: Api, team: Team) -> None:
    item = team.items[0]
    assert item["content"] == "turn number 0"
    await api.annotate(item, team.annotator, start_offset=5, end_offset=11)

    response = await api.client.patch(item_url(item), json={"content": "too short"}, headers=team.owner.headers)

    problem(response, 409, "content_conflicts_with_annotations")
    assert (await api.client.get(item_url(item), headers=team.owner.headers)).json()["content"] == "turn number 0"
    fits = await api.client.patch(item_url(item), json={"content": "exactly 11!"}, headers=team.owner.headers)
    assert fits.status_code == 200, fits.text


async def test_delete_detaches_children_drops_annotations_and_counts(api: Api, team: Team) -> None:
    parent = team.items[0]
    children = []
    for external_id in ("c1", "c2"):
        response = await create(
            api.client, team.container, team.owner.headers, external_id=external_id, parent_id=parent["id"]
        )
        children.append(response.json())
    annotation = await api.annotate(parent, team.annotator)
    assert await item_count(api.client, team.container, team.owner.headers) == 7

    response = await api.client.delete(item_url(parent), headers=team.manager.headers)

    assert response.status_code == 204
    assert response.content == b""
    problem(await api.client.get(item_url(parent), headers=team.owner.headers), 404, "not_found")
    for child in children:
        fetched = await api.client.get(item_url(child), headers=team.owner.headers)
        assert fetched.status_code == 200
        assert fetched.json()["parent_id"] is None
    problem(await api.client.get(f"/api/v1/annotations/{annotation['id']}", headers=team.owner.headers), 404)
    assert await item_count(api.client, team.container, team.owner.headers) == 6
    listed = await all_items(api.client, team.container, team.owner.headers)
    assert parent["id"] not in [item["id"] for item in listed]
    assert len(listed) == 6
    problem(await api.client.delete(item_url(parent), headers=team.owner.headers), 404, "not_found")
    assert await item_count(api.client, team.container, team.owner.headers) == 6


async def test_lower_roles_get_403_on_item_writes_and_strangers_404(api: Api, team: Team) -> None:
    item = team.items[0]
    container = team.container
    for actor in (team.reviewer, team.annotator, team.viewer):
        headers = actor.headers
        problem(await create(api.client, container, headers, external_id="new"), 403, "forbidden")
        bulk = await api.client.post(
            f"{items_url(container)}/bulk", json={"items": [{"external_id": "new"}]}, headers=headers
        )
        problem(bulk, 403, "forbidden")
        problem(await api.client.patch(item_url(item), json={"content": "x"}, headers=headers), 403, "forbidden")
        problem(await api.client.delete(item_url(item), headers=headers), 403, "forbidden")
        assert (await api.client.get(item_url(item), headers=headers)).status_code == 200

    headers = team.stranger.headers
    problem(await api.client.get(item_url(item), headers=headers), 404, "not_found")
    problem(await api.client.get(items_url(container), headers=headers), 404, "not_found")
    problem(await create(api.client, container, headers, external_id="new"), 404, "not_found")
    problem(
        await api.client.post(f"{items_url(container)}/bulk", json={"items": [{"external_id": "n"}]}, headers=headers),
        404,
        "not_found",
    )
    problem(await api.client.patch(item_url(item), json={"content": "x"}, headers=headers), 404, "not_found")
    problem(await api.client.delete(item_url(item), headers=headers), 404, "not_found")
    problem(await api.client.get(item_url(item)), 401, "not_authenticated")
    problem(await api.client.get(items_url(container)), 401, "not_authenticated")
    for garbage in ("garbage", "0193a5e2-7c1d-7b3e-9f00-2a4c6d8e0f12"):
        problem(await api.client.get(f"/api/v1/items/{garbage}", headers=team.owner.headers), 404, "not_found")
        problem(
            await api.client.get(f"/api/v1/containers/{garbage}/items", headers=team.owner.headers), 404, "not_found"
        )

    assert await all_items(api.client, container, team.owner.headers) == team.items
    assert await item_count(api.client, container, team.owner.headers) == 5


# Bulk


async def test_bulk_inserts_1000_items_with_parents_forward_and_backward(api: Api, team: Team) -> None:
    container = await api.container(team.project, team.owner)
    rows: list[dict[str, Any]] = []
    expected_parent: dict[str, str] = {}
    for index in range(1000):
        row: dict[str, Any] = {"external_id": f"turn-{index:04d}", "content": f"text {index}"}
        if index % 10 == 0 and index + 5 < 1000:
            row["parent_external_id"] = f"turn-{index + 5:04d}"
        elif index % 10 == 7:
            row["parent_external_id"] = f"turn-{index - 2:04d}"
        if "parent_external_id" in row:
            expected_parent[row["external_id"]] = row["parent_external_id"]
        rows.append(row)

    response = await api.client.post(f"{items_url(container)}/bulk", json={"items": rows}, headers=team.owner.headers)

    assert response.status_code == 201, response.text[:2000]
    assert "Location" in response.headers
    created = response.json()["items"]
    assert [item["external_id"] for item in created] == [row["external_id"] for row in rows]
    assert [item["sequence"] for item in created] == list(range(1000))
    ids = {item["external_id"]: item["id"] for item in created}
    assert len(set(ids.values())) == 1000
    parents = {item["external_id"]: item["parent_id"] for item in created if item["parent_id"] is not None}
    assert parents == {child: ids[parent] for child, parent in expected_parent.items()}
    assert await item_count(api.client, container, team.owner.headers) == 1000

    first_page = await api.client.get(items_url(container), params={"limit": 500}, headers=team.owner.headers)
    second_page = await api.client.get(
        items_url(container),
        params={"limit": 500, "cursor": first_page.json()["next_cursor"]},
        headers=team.owner.headers,
    )
    assert second_page.json()["next_cursor"] is None
    assert first_page.json()["items"] + second_page.json()["items"] == created


async def test_bulk_with_bad_rows_names_each_and_writes_nothing(api: Api, team: Team) -> None:
    container = await api.container(team.project, team.owner, item_schema=SCHEMA)
    existing = await api.items(container, team.owner, 2, metadata={"speaker": "A"})
    before = await all_items(api.client, container, team.owner.headers)
    good = {"speaker": "B"}
    rows = [
        {"external_id": "fresh-0", "metadata": good},
        {"external_id": "fresh-0", "metadata": good},
        {"external_id": existing[0]["external_id"], "metadata": good},
        {"external_id": "fresh-3", "metadata": good, "parent_external_id": "nobody"},
        {"external_id": "fresh-4", "metadata": {"speaker": 42}},
        {"external_id": "fresh-5", "metadata": good, "parent_external_id": "fresh-0"},
        {"external_id": "fresh-6", "metadata": good, "parent_id": team.items[0]["id"]},
    ]

    response = await api.client.post(f"{items_url(container)}/bulk", json={"items": rows}, headers=team.owner.headers)

    body = problem(response, 422, "bulk_rows_invalid")
    locs = {tuple(error["loc"]) for error in body["errors"]}
    assert ("body", "items", 1, "external_id") in locs
    assert ("body", "items", 2, "external_id") in locs
    assert ("body", "items", 3, "parent_external_id") in locs
    assert ("body", "items", 4, "metadata") in locs
    assert ("body", "items", 6, "parent_id") in locs
    assert {loc[2] for loc in locs} == {1, 2, 3, 4, 6}
    assert all(loc[:2] == ("body", "items") for loc in locs)
    assert await item_count(api.client, container, team.owner.headers) == 2
    assert await all_items(api.client, container, team.owner.headers) == before

    retry = await api.client.post(
        f"{items_url(container)}/bulk", json={"items": [rows[0], rows[5]]}, headers=team.owner.headers
    )
    assert retry.status_code == 201, retry.text


async def test_bulk_size_limits(api: Api, team: Team) -> None:
    url = f"{items_url(team.container)}/bulk"

    too_many = await api.client.post(
        url, json={"items": [{"external_id": f"r{index}"} for index in range(10_001)]}, headers=team.owner.headers
    )
    problem(too_many, 422)
    problem(await api.client.post(url, json={"items": []}, headers=team.owner.headers), 422, "validation_failed")
    problem(await api.client.post(url, json={}, headers=team.owner.headers), 422, "validation_failed")
    problem(await api.client.post(url, json=[{"external_id": "a"}], headers=team.owner.headers), 422)
    problem(
        await api.client.post(
            url, json={"items": [{"external_id": "a"}], "mode": "upsert"}, headers=team.owner.headers
        ),
        422,
        "validation_failed",
    )
    bad_row = await api.client.post(
        url, json={"items": [{"external_id": "fine"}, {"external_id": ""}]}, headers=team.owner.headers
    )
    body = problem(bad_row, 422)
    assert any(error["loc"][:3] == ["body", "items", 1] for error in body["errors"]), body

    assert await item_count(api.client, team.container, team.owner.headers) == 5
    assert await all_items(api.client, team.container, team.owner.headers) == team.items


# Pagination


def next_link(response: httpx.Response) -> str | None:
    header = response.headers.get("Link")
    if header is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', header)
    assert match, header
    return match.group(1)


async def test_pages_follow_cursor_and_link_header(api: Api, team: Team) -> None:
    container = await api.container(team.project, team.owner)
    made = await api.items(container, team.owner, 120)
    expected = sorted(made, key=lambda item: item["sequence"])

    by_cursor: list[dict[str, Any]] = []
    cursor: str | None = None
    sizes = []
    while True:
        params: dict[str, Any] = {"limit": 50}
        if cursor is not None:
            params["cursor"] = cursor
        response = await api.client.get(items_url(container), params=params, headers=team.viewer.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        by_cursor += body["items"]
        sizes.append(len(body["items"]))
        cursor = body["next_cursor"]
        if cursor is None:
            assert next_link(response) is None
            break
    assert sizes == [50, 50, 20]

    by_link: list[dict[str, Any]] = []
    url: str | None = f"http://testserver{items_url(container)}?limit=50"
    while url is not None:
        assert url.startswith("http://testserver/api/v1/containers/"), url
        response = await api.client.get(url, headers=team.viewer.headers)
        assert response.status_code == 200, response.text
        by_link += response.json()["items"]
        url = next_link(response)
        assert (url is None) == (response.json()["next_cursor"] is None)
        if url is not None:
            assert "limit=50" in url
            assert f"cursor={response.json()['next_cursor']}" in url

    assert by_cursor == by_link == expected
    assert len({item["id"] for item in by_cursor}) == 120


async def test_include_total(api: Api, team: Team) -> None:
    container = await api.container(team.project, team.owner)
    await api.items(container, team.owner, 120)

    with_total = await api.client.get(
        items_url(container), params={"limit": 50, "include_total": "true"}, headers=team.viewer.headers
    )
    assert with_total.json()["total"] == 120
    second = await api.client.get(
        items_url(container),
        params={"limit": 50, "include_total": "true", "cursor": with_total.json()["next_cursor"]},
        headers=team.viewer.headers,
    )
    assert second.json()["total"] == 120
    without = await api.client.get(items_url(container), params={"limit": 50}, headers=team.viewer.headers)
    assert without.json().get("total") is None


async def test_bad_limits_and_cursors(api: Api, team: Team) -> None:
    url = items_url(team.container)
    headers = team.owner.headers
    for limit in ("0", "501", "-1", "ten", "1e3"):
        problem(await api.client.get(url, params={"limit": limit}, headers=headers), 422, "validation_failed")
    assert len((await api.client.get(url, params={"limit": 500}, headers=headers)).json()["items"]) == 5
    assert len((await api.client.get(url, params={"limit": 1}, headers=headers)).json()["items"]) == 1

    await api.project(team.owner, name="Second")
    projects = await api.client.get("/api/v1/projects", params={"limit": 1}, headers=headers)
    project_cursor = projects.json()["next_cursor"]
    assert project_cursor is not None
    await api.container(team.project, team.owner)
    containers = await api.client.get(
        f"/api/v1/projects/{team.project['id']}/containers", params={"limit": 1}, headers=headers
    )
    container_cursor = containers.json()["next_cursor"]
    assert container_cursor is not None

    for cursor in (
        "garbage",
        "!!!!",
        "bnVsbA",  # base64 of `null`
        "WyJhIiwiYiJd",  # ["a","b"]
        "WzEuNSwiMDE5M2E1ZTItN2MxZC03YjNlLTlmMDAtMmE0YzZkOGUwZjEyIl0",  # [1.5, uuid]
        project_cursor,
        container_cursor,
        "A" * 512,
    ):
        problem(await api.client.get(url, params={"cursor": cursor}, headers=headers), 400, "invalid_cursor")
    problem(await api.client.get(url, params={"cursor": "A" * 513}, headers=headers), 422, "validation_failed")

    items_page = await api.client.get(url, params={"limit": 2}, headers=headers)
    problem(
        await api.client.get("/api/v1/projects", params={"cursor": items_page.json()["next_cursor"]}, headers=headers),
        400,
        "invalid_cursor",
    )


async def test_cursor_from_another_container_only_moves_position(api: Api, team: Team) -> None:
    """A cursor is a position in `(sequence, id)` order; used on another container it cannot leak its items."""
    other = await api.container(team.project, team.owner)
    await api.items(other, team.owner, 4)
    page = await api.client.get(items_url(other), params={"limit": 2}, headers=team.owner.headers)

    response = await api.client.get(
        items_url(team.container), params={"cursor": page.json()["next_cursor"]}, headers=team.owner.headers
    )

    assert response.status_code == 200
    assert {item["container_id"] for item in response.json()["items"]} <= {team.container["id"]}


# Cost


async def test_item_pages_cost_a_constant_number_of_queries(api: Api, team: Team, count_queries: QueryCounter) -> None:
    container = await api.container(team.project, team.owner)
    await api.items(container, team.owner, 300)
    await api.annotate(team.items[0], team.annotator)

    counts = {}
    for limit in (5, 200):
        count_queries.statements.clear()
        response = await api.client.get(items_url(container), params={"limit": limit}, headers=team.viewer.headers)
        assert response.status_code == 200
        assert len(response.json()["items"]) == limit
        counts[limit] = count_queries.count

    count_queries.statements.clear()
    deep = await api.client.get(
        items_url(container),
        params={"limit": 200, "cursor": response.json()["next_cursor"]},
        headers=team.viewer.headers,
    )
    assert len(deep.json()["items"]) == 100
    assert counts[5] == counts[200] == count_queries.count, count_queries.statements
    assert counts[5] <= 4, count_queries.statements


# Bulk update and delete


async def test_bulk_metadata_update_is_all_or_nothing(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    schema = {"type": "object", "properties": {"speaker": {"type": "string"}}}
    container = await api.container(team.project, team.owner, item_schema=schema)
    items = await api.items(container, team.owner, 3)
    url = f"/api/v1/containers/{container['id']}/items/bulk"
    bad = {
        "items": [
            {"id": items[0]["id"], "metadata": {"speaker": "ana"}},
            {"id": items[1]["id"], "metadata": {"speaker": 7}},
            {"id": team.items[0]["id"], "metadata": {}},  # another container's item
        ]
    }
    body = problem(await client.patch(url, json=bad, headers=team.owner.headers), 422, "bulk_rows_invalid")
    assert [(error["loc"], error["type"]) for error in body["errors"]] == [
        (["body", "items", 1, "metadata"], "metadata_invalid"),
        (["body", "items", 2, "id"], "item_not_found"),
    ]
    unchanged = await client.get(f"/api/v1/items/{items[0]['id']}", headers=team.owner.headers)
    assert unchanged.json()["metadata"] == {}

    good = {"items": [{"id": item["id"], "metadata": {"speaker": f"s{n}"}} for n, item in enumerate(items)]}
    response = await client.patch(url, json=good, headers=team.owner.headers)
    assert response.status_code == 200, response.text
    assert [item["metadata"] for item in response.json()["items"]] == [{"speaker": f"s{n}"} for n in range(3)]


async def test_bulk_delete_is_all_or_nothing(client: httpx.AsyncClient, api: Api, team: Team) -> None:
    container = await api.container(team.project, team.owner)
    items = await api.items(container, team.owner, 4)
    reply = await client.post(
        f"/api/v1/containers/{container['id']}/items",
        json={"external_id": "reply", "parent_id": items[0]["id"]},
        headers=team.owner.headers,
    )
    await api.annotate(items[0], team.annotator)
    url = f"/api/v1/containers/{container['id']}/items/bulk-delete"
    wrong = {"ids": [items[0]["id"], team.items[0]["id"]]}
    body = problem(await client.post(url, json=wrong, headers=team.owner.headers), 422, "bulk_rows_invalid")
    assert [error["loc"] for error in body["errors"]] == [["body", "ids", 1]]

    response = await client.post(url, json={"ids": [items[0]["id"], items[1]["id"]]}, headers=team.owner.headers)
    assert response.status_code == 204, response.text
    listed = (await client.get(items_url(container), headers=team.owner.headers)).json()["items"]
    assert [item["external_id"] for item in listed] == [items[2]["external_id"], items[3]["external_id"], "reply"]
    assert listed[-1]["id"] == reply.json()["id"]
    assert listed[-1]["parent_id"] is None
    refreshed = await client.get(f"/api/v1/containers/{container['id']}", headers=team.owner.headers)
    assert refreshed.json()["item_count"] == 3
    annotations = await client.get(f"/api/v1/containers/{container['id']}/annotations", headers=team.owner.headers)
    assert annotations.json()["items"] == []
