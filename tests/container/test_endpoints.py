"""Containers: who may create and change them, unique names, item schemas, counts, and cascading deletes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Api, Team, problem

SCHEMA = {
    "type": "object",
    "properties": {"speaker": {"type": "string"}},
    "required": ["speaker"],
}


def stable(container: dict[str, Any]) -> dict[str, Any]:
    """The fields no item write touches (`updated_at` moves with `item_count`)."""
    return {key: value for key, value in container.items() if key not in ("updated_at", "item_count")}


def containers_url(project: dict[str, Any]) -> str:
    return f"/api/v1/projects/{project['id']}/containers"


def container_url(container: dict[str, Any]) -> str:
    return f"/api/v1/containers/{container['id']}"


async def listed_ids(api: Api, project: dict[str, Any], headers: dict[str, str]) -> list[str]:
    response = await api.client.get(containers_url(project), params={"limit": 500}, headers=headers)
    assert response.status_code == 200, response.text
    return [container["id"] for container in response.json()["items"]]


async def test_owner_and_manager_create_with_location(api: Api, team: Team) -> None:
    for actor, name in [(team.owner, "by-owner"), (team.manager, "by-manager")]:
        response = await api.client.post(
            containers_url(team.project), json={"name": name, "type": "chat_room"}, headers=actor.headers
        )
        assert response.status_code == 201, response.text
        body = response.json()
        assert response.headers["Location"] == f"/api/v1/containers/{body['id']}"
        assert body["project_id"] == team.project["id"]
        assert (body["name"], body["type"], body["item_schema"], body["item_count"]) == (name, "chat_room", None, 0)
        fetched = await api.client.get(response.headers["Location"], headers=team.viewer.headers)
        assert fetched.status_code == 200
        assert fetched.json() == body


async def test_create_defaults_and_item_schema(api: Api, team: Team) -> None:
    response = await api.client.post(
        containers_url(team.project), json={"name": "typed", "item_schema": SCHEMA}, headers=team.owner.headers
    )
    assert response.status_code == 201, response.text
    assert response.json()["type"] == "generic"
    assert response.json()["item_schema"] == SCHEMA


async def test_lower_roles_get_403_and_stranger_404_on_create(api: Api, team: Team) -> None:
    before = await listed_ids(api, team.project, team.owner.headers)
    for actor in (team.reviewer, team.annotator, team.viewer):
        response = await api.client.post(containers_url(team.project), json={"name": "x"}, headers=actor.headers)
        problem(response, 403, "forbidden")
    response = await api.client.post(containers_url(team.project), json={"name": "x"}, headers=team.stranger.headers)
    problem(response, 404, "not_found")
    problem(await api.client.get(containers_url(team.project), headers=team.stranger.headers), 404, "not_found")
    problem(await api.client.post(containers_url(team.project), json={"name": "x"}), 401, "not_authenticated")

    assert await listed_ids(api, team.project, team.owner.headers) == before


async def test_duplicate_name_in_project_is_409_but_fine_elsewhere(api: Api, team: Team) -> None:
    before = await listed_ids(api, team.project, team.owner.headers)

    response = await api.client.post(containers_url(team.project), json={"name": "VAC_R10"}, headers=team.owner.headers)
    problem(response, 409, "container_name_taken")
    response = await api.client.post(
        containers_url(team.project), json={"name": "  VAC_R10 "}, headers=team.owner.headers
    )
    problem(response, 409, "container_name_taken")
    assert await listed_ids(api, team.project, team.owner.headers) == before

    other = await api.project(team.owner, name="Other")
    response = await api.client.post(containers_url(other), json={"name": "VAC_R10"}, headers=team.owner.headers)
    assert response.status_code == 201, response.text


async def test_rename_to_a_taken_name_is_409(api: Api, team: Team) -> None:
    second = await api.container(team.project, team.owner, name="second")

    response = await api.client.patch(container_url(second), json={"name": "VAC_R10"}, headers=team.owner.headers)

    problem(response, 409, "container_name_taken")
    assert (await api.client.get(container_url(second), headers=team.owner.headers)).json()["name"] == "second"
    same = await api.client.patch(container_url(second), json={"name": "second"}, headers=team.owner.headers)
    assert same.status_code == 200, same.text


async def test_invalid_item_schema_is_422_and_writes_nothing(api: Api, team: Team) -> None:
    before = await listed_ids(api, team.project, team.owner.headers)
    for schema in [{"type": 12}, {"type": "no-such-type"}, {"properties": {"a": {"minLength": -1}}}]:
        response = await api.client.post(
            containers_url(team.project), json={"name": "bad", "item_schema": schema}, headers=team.owner.headers
        )
        body = problem(response, 422, "invalid_item_schema")
        assert body["errors"][0]["loc"][:2] == ["body", "item_schema"]
    response = await api.client.post(
        containers_url(team.project), json={"name": "bad", "item_schema": [1]}, headers=team.owner.headers
    )
    problem(response, 422, "validation_failed")

    assert await listed_ids(api, team.project, team.owner.headers) == before
    patched = await api.client.patch(
        container_url(team.container), json={"item_schema": {"type": 12}}, headers=team.owner.headers
    )
    problem(patched, 422, "invalid_item_schema")
    assert (await api.client.get(container_url(team.container), headers=team.owner.headers)).json()[
        "item_schema"
    ] is None


async def test_bad_create_bodies_are_refused(api: Api, team: Team) -> None:
    before = await listed_ids(api, team.project, team.owner.headers)
    url = containers_url(team.project)
    headers = team.owner.headers
    for body in [
        {"name": ""},
        {"name": "   "},
        {"name": "n" * 201},
        {"name": 5},
        {"name": "ok", "type": "Has Spaces"},
        {"name": "ok", "item_count": 99},
        {"name": "ok", "project_id": team.project["id"]},
        {},
    ]:
        problem(await api.client.post(url, json=body, headers=headers), 422, "validation_failed")
    problem(
        await api.client.post(url, content=b'{"name":', headers={**headers, "Content-Type": "application/json"}),
        400,
        "malformed_json",
    )
    problem(
        await api.client.post(url, content=b'{"name":"x"}', headers={**headers, "Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )

    assert await listed_ids(api, team.project, team.owner.headers) == before


async def test_list_pages_in_creation_order(api: Api, team: Team) -> None:
    made = [team.container["id"]] + [(await api.container(team.project, team.owner))["id"] for _ in range(5)]

    seen: list[str] = []
    pages = 0
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2, "include_total": "true"}
        if cursor:
            params["cursor"] = cursor
        response = await api.client.get(containers_url(team.project), params=params, headers=team.viewer.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == 6
        assert len(body["items"]) <= 2
        seen += [container["id"] for container in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            assert "Link" not in response.headers
            break
        assert 'rel="next"' in response.headers["Link"]
    assert seen == made
    assert pages == 3


async def test_list_only_shows_the_projects_containers(api: Api, team: Team) -> None:
    other = await api.project(team.owner, name="Other")
    await api.container(other, team.owner)
    assert await listed_ids(api, team.project, team.annotator.headers) == [team.container["id"]]


async def test_item_count_follows_item_writes(api: Api, team: Team) -> None:
    url = container_url(team.container)
    assert (await api.client.get(url, headers=team.viewer.headers)).json()["item_count"] == 5

    response = await api.client.post(
        f"{url}/items", json={"external_id": "single", "content": "hi"}, headers=team.manager.headers
    )
    assert response.status_code == 201, response.text
    bulk = await api.client.post(
        f"{url}/items/bulk",
        json={"items": [{"external_id": f"b{index}"} for index in range(3)]},
        headers=team.owner.headers,
    )
    assert bulk.status_code == 201, bulk.text

    body = (await api.client.get(url, headers=team.viewer.headers)).json()
    listed = await api.client.get(f"{url}/items", params={"limit": 500}, headers=team.viewer.headers)
    assert body["item_count"] == 9 == len(listed.json()["items"])

    deleted = await api.client.delete(f"/api/v1/items/{team.items[0]['id']}", headers=team.owner.headers)
    assert deleted.status_code == 204
    assert (await api.client.get(url, headers=team.viewer.headers)).json()["item_count"] == 8


async def test_get_by_members_stranger_and_anonymous(api: Api, team: Team) -> None:
    url = container_url(team.container)
    for actor in (team.owner, team.manager, team.reviewer, team.annotator, team.viewer):
        response = await api.client.get(url, headers=actor.headers)
        assert response.status_code == 200
        assert stable(response.json()) == stable(team.container)
        assert response.json()["item_count"] == 5
    problem(await api.client.get(url, headers=team.stranger.headers), 404, "not_found")
    problem(await api.client.get(url), 401, "not_authenticated")
    for garbage in ("nope", "12345", "0193a5e2-7c1d-7b3e-9f00-2a4c6d8e0f12"):
        problem(await api.client.get(f"/api/v1/containers/{garbage}", headers=team.owner.headers), 404, "not_found")


async def test_patch_renames_and_clears_item_schema(api: Api, team: Team) -> None:
    container = await api.container(team.project, team.owner, name="typed", item_schema=SCHEMA)
    url = container_url(container)

    renamed = await api.client.patch(url, json={"name": "renamed", "type": "forum"}, headers=team.manager.headers)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["name"], renamed.json()["type"], renamed.json()["item_schema"]) == (
        "renamed",
        "forum",
        SCHEMA,
    )

    cleared = await api.client.patch(url, json={"item_schema": None}, headers=team.owner.headers)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["item_schema"] is None
    assert cleared.json()["name"] == "renamed"

    fetched = (await api.client.get(url, headers=team.viewer.headers)).json()
    assert (fetched["name"], fetched["type"], fetched["item_schema"]) == ("renamed", "forum", None)
    item = await api.client.post(
        f"{url}/items", json={"external_id": "free", "metadata": {}}, headers=team.owner.headers
    )
    assert item.status_code == 201, item.text


async def test_patch_refusals_change_nothing(api: Api, team: Team) -> None:
    url = container_url(team.container)
    for actor in (team.reviewer, team.annotator, team.viewer):
        problem(await api.client.patch(url, json={"name": "mine"}, headers=actor.headers), 403, "forbidden")
    problem(await api.client.patch(url, json={"name": "mine"}, headers=team.stranger.headers), 404, "not_found")
    for body in [{"name": None}, {"name": ""}, {"type": None}, {"item_count": 0}, {"project_id": None}]:
        problem(await api.client.patch(url, json=body, headers=team.owner.headers), 422, "validation_failed")

    after = (await api.client.get(url, headers=team.owner.headers)).json()
    assert stable(after) == stable(team.container)
    assert after["item_count"] == 5


async def test_delete_cascades_items_and_annotations(api: Api, team: Team, engine: AsyncEngine) -> None:
    annotation = await api.annotate(team.items[1], team.annotator)
    other = await api.container(team.project, team.owner, name="other")
    await api.items(other, team.owner, 2)
    url = container_url(team.container)

    for actor in (team.reviewer, team.annotator, team.viewer):
        problem(await api.client.delete(url, headers=actor.headers), 403, "forbidden")
    problem(await api.client.delete(url, headers=team.stranger.headers), 404, "not_found")
    assert (await api.client.get(url, headers=team.owner.headers)).status_code == 200

    response = await api.client.delete(url, headers=team.manager.headers)

    assert response.status_code == 204
    assert response.content == b""
    problem(await api.client.get(url, headers=team.owner.headers), 404, "not_found")
    problem(await api.client.get(f"{url}/items", headers=team.owner.headers), 404, "not_found")
    for item in team.items:
        problem(await api.client.get(f"/api/v1/items/{item['id']}", headers=team.owner.headers), 404, "not_found")
    problem(await api.client.get(f"/api/v1/annotations/{annotation['id']}", headers=team.owner.headers), 404)
    assert await listed_ids(api, team.project, team.owner.headers) == [other["id"]]
    async with engine.connect() as connection:
        items = (await connection.execute(text("SELECT count(*) FROM items"))).scalar_one()
        annotations = (await connection.execute(text("SELECT count(*) FROM annotations"))).scalar_one()
    assert (items, annotations) == (2, 0)
    problem(await api.client.delete(url, headers=team.owner.headers), 404, "not_found")
