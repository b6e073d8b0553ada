"""Projects: who sees which, who may change or delete them, and what bad input gets."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import Actor, Api, Team, problem

PROJECTS = "/api/v1/projects"


def nested(levels: int) -> dict[str, Any]:
    """`levels` objects, each inside the previous one."""
    value: dict[str, Any] = {"leaf": True}
    for _ in range(levels - 1):
        value = {"child": value}
    return value


async def list_ids(client: httpx.AsyncClient, actor: Actor) -> list[str]:
    response = await client.get(PROJECTS, params={"limit": 500}, headers=actor.headers)
    assert response.status_code == 200, response.text
    return [project["id"] for project in response.json()["items"]]


async def count_rows(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


async def test_create_returns_201_location_and_defaults(api: Api) -> None:
    ana = await api.user("ana")
    response = await api.client.post(PROJECTS, json={"name": "Debates"}, headers=ana.headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["Location"] == f"{PROJECTS}/{body['id']}"
    assert body["name"] == "Debates"
    assert body["my_role"] == "owner"
    assert body["type"] == "generic"
    assert body["settings"] == {}
    assert body["sensitive"] is False
    assert body["description"] == ""
    for stamp in (body["created_at"], body["updated_at"]):
        assert datetime.fromisoformat(stamp).utcoffset() == timedelta(0)
    fetched = await api.client.get(response.headers["Location"], headers=ana.headers)
    assert fetched.status_code == 200
    assert fetched.json() == body


async def test_create_keeps_given_fields(api: Api) -> None:
    ana = await api.user("ana")
    fields = {
        "name": "  Chats  ",
        "description": "Who replies to whom",
        "type": "chat_disentanglement",
        "settings": {"labels": ["a", "b"], "deep": nested(4)},
        "sensitive": True,
    }
    response = await api.client.post(PROJECTS, json=fields, headers=ana.headers)

    assert response.status_code == 201, response.text
    body = response.json()
    assert body["name"] == "Chats"
    assert {key: body[key] for key in ("description", "type", "settings", "sensitive")} == {
        key: fields[key] for key in ("description", "type", "settings", "sensitive")
    }
    fetched = (await api.client.get(f"{PROJECTS}/{body['id']}", headers=ana.headers)).json()
    assert fetched["settings"] == fields["settings"]


async def test_list_shows_only_the_callers_projects(api: Api) -> None:
    ana, ben = await api.user("ana"), await api.user("ben")
    first = await api.project(ana, name="first")
    bens = await api.project(ben, name="ben's")
    second = await api.project(ana, name="second")

    assert await list_ids(api.client, ana) == [first["id"], second["id"]]
    assert await list_ids(api.client, ben) == [bens["id"]]

    await api.add_member(bens, ben, ana, "viewer")
    response = await api.client.get(PROJECTS, headers=ana.headers)
    roles = {project["id"]: project["my_role"] for project in response.json()["items"]}
    assert roles == {first["id"]: "owner", second["id"]: "owner", bens["id"]: "viewer"}


async def test_superuser_sees_every_project_with_my_role_null_where_not_member(api: Api) -> None:
    ana = await api.user("ana")
    root = await api.user("root", superuser=True)
    anas = await api.project(ana, name="ana's")
    own = await api.project(root, name="root's")

    response = await api.client.get(PROJECTS, headers=root.headers)

    assert response.status_code == 200
    roles = {project["id"]: project["my_role"] for project in response.json()["items"]}
    assert roles == {anas["id"]: None, own["id"]: "owner"}
    single = await api.client.get(f"{PROJECTS}/{anas['id']}", headers=root.headers)
    assert single.status_code == 200
    assert single.json()["my_role"] is None
    assert await list_ids(api.client, ana) == [anas["id"]]


async def test_list_pages_and_total(api: Api) -> None:
    ana = await api.user("ana")
    made = [(await api.project(ana, name=f"p{index}"))["id"] for index in range(5)]

    seen: list[str] = []
    url: str | None = f"{PROJECTS}?limit=2&include_total=true"
    while url is not None:
        response = await api.client.get(url, headers=ana.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == 5
        seen += [project["id"] for project in body["items"]]
        url = f"{PROJECTS}?limit=2&include_total=true&cursor={body['next_cursor']}" if body["next_cursor"] else None
    assert seen == made


async def test_members_of_every_role_can_read(api: Api, team: Team) -> None:
    for actor, role in [
        (team.owner, "owner"),
        (team.manager, "manager"),
        (team.reviewer, "reviewer"),
        (team.annotator, "annotator"),
        (team.viewer, "viewer"),
    ]:
        response = await api.client.get(f"{PROJECTS}/{team.project['id']}", headers=actor.headers)
        assert response.status_code == 200, response.text
        assert response.json()["my_role"] == role
        assert response.json()["name"] == "Debates"


async def test_manager_may_update(api: Api, team: Team) -> None:
    url = f"{PROJECTS}/{team.project['id']}"
    response = await api.client.patch(
        url, json={"name": "Renamed", "settings": {"k": 1}, "description": "new"}, headers=team.manager.headers
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["name"], body["settings"], body["description"]) == ("Renamed", {"k": 1}, "new")
    assert body["my_role"] == "manager"
    assert body["type"] == team.project["type"]
    fetched = (await api.client.get(url, headers=team.owner.headers)).json()
    assert (fetched["name"], fetched["settings"], fetched["description"]) == ("Renamed", {"k": 1}, "new")


async def test_viewer_annotator_and_reviewer_may_not_update(api: Api, team: Team) -> None:
    url = f"{PROJECTS}/{team.project['id']}"
    for actor in (team.viewer, team.annotator, team.reviewer):
        response = await api.client.patch(url, json={"name": "Mine now"}, headers=actor.headers)
        problem(response, 403, "forbidden")

    assert (await api.client.get(url, headers=team.owner.headers)).json() == {**team.project, "my_role": "owner"}


async def test_owner_deletes_project_with_its_containers_items_and_annotations(
    api: Api, team: Team, engine: AsyncEngine
) -> None:
    annotation = await api.annotate(team.items[0], team.annotator)
    other = await api.project(team.owner, name="Kept")
    kept_container = await api.container(other, team.owner)
    await api.items(kept_container, team.owner, 2)
    url = f"{PROJECTS}/{team.project['id']}"

    response = await api.client.delete(url, headers=team.owner.headers)

    assert response.status_code == 204
    assert response.content == b""
    problem(await api.client.get(url, headers=team.owner.headers), 404, "not_found")
    problem(await api.client.get(f"/api/v1/containers/{team.container['id']}", headers=team.owner.headers), 404)
    problem(await api.client.get(f"/api/v1/items/{team.items[0]['id']}", headers=team.owner.headers), 404)
    problem(await api.client.get(f"/api/v1/annotations/{annotation['id']}", headers=team.owner.headers), 404)
    assert await list_ids(api.client, team.owner) == [other["id"]]
    assert await list_ids(api.client, team.manager) == []
    assert await count_rows(engine, "containers") == 1
    assert await count_rows(engine, "items") == 2
    assert await count_rows(engine, "annotations") == 0
    assert await count_rows(engine, "memberships") == 1


async def test_only_the_owner_may_delete(api: Api, team: Team) -> None:
    url = f"{PROJECTS}/{team.project['id']}"
    for actor in (team.manager, team.reviewer, team.annotator, team.viewer):
        problem(await api.client.delete(url, headers=actor.headers), 403, "forbidden")

    assert (await api.client.get(url, headers=team.owner.headers)).status_code == 200
    listed = await api.client.get(f"{PROJECTS}/{team.project['id']}/containers", headers=team.owner.headers)
    assert [container["id"] for container in listed.json()["items"]] == [team.container["id"]]
    items = await api.client.get(f"/api/v1/containers/{team.container['id']}/items", headers=team.owner.headers)
    assert len(items.json()["items"]) == 5


async def test_stranger_gets_404_and_changes_nothing(api: Api, team: Team) -> None:
    url = f"{PROJECTS}/{team.project['id']}"
    headers = team.stranger.headers

    problem(await api.client.get(url, headers=headers), 404, "not_found")
    problem(await api.client.patch(url, json={"name": "Taken"}, headers=headers), 404, "not_found")
    problem(await api.client.delete(url, headers=headers), 404, "not_found")

    assert await list_ids(api.client, team.stranger) == []
    assert (await api.client.get(url, headers=team.owner.headers)).json()["name"] == "Debates"


async def test_missing_project_and_stranger_project_look_the_same(api: Api, team: Team) -> None:
    unknown = "0193a5e2-7c1d-7b3e-9f00-2a4c6d8e0f12"
    missing = problem(await api.client.get(f"{PROJECTS}/{unknown}", headers=team.stranger.headers), 404)
    hidden = problem(await api.client.get(f"{PROJECTS}/{team.project['id']}", headers=team.stranger.headers), 404)
    assert missing["detail"] == hidden["detail"]


async def test_anonymous_gets_401(api: Api, team: Team) -> None:
    url = f"{PROJECTS}/{team.project['id']}"
    for response in [
        await api.client.get(PROJECTS),
        await api.client.post(PROJECTS, json={"name": "anon"}),
        await api.client.get(url),
        await api.client.patch(url, json={"name": "anon"}),
        await api.client.delete(url),
        await api.client.get(url, headers={"Authorization": "Bearer not-a-token"}),
    ]:
        problem(response, 401, "not_authenticated")
    assert await list_ids(api.client, team.owner) == [team.project["id"]]
    assert (await api.client.get(url, headers=team.owner.headers)).json()["name"] == "Debates"


BAD_CREATES: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("empty name", {"json": {"name": ""}}, 422, "validation_failed"),
    ("whitespace name", {"json": {"name": "   \t "}}, 422, "validation_failed"),
    ("missing name", {"json": {}}, 422, "validation_failed"),
    ("201-char name", {"json": {"name": "n" * 201}}, 422, "validation_failed"),
    ("name is a number", {"json": {"name": 12}}, 422, "validation_failed"),
    ("name is a list", {"json": {"name": ["a"]}}, 422, "validation_failed"),
    ("name is null", {"json": {"name": None}}, 422, "validation_failed"),
    ("unknown field", {"json": {"name": "ok", "owner_id": "someone"}}, 422, "validation_failed"),
    ("settings is a list", {"json": {"name": "ok", "settings": [1, 2]}}, 422, "validation_failed"),
    ("settings is a string", {"json": {"name": "ok", "settings": "{}"}}, 422, "validation_failed"),
    ("settings too deep", {"json": {"name": "ok", "settings": nested(17)}}, 422, "validation_failed"),
    (
        "settings hostile depth",
        {
            "content": b'{"name": "ok", "settings": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5000 + b"}",
            "headers": {"Content-Type": "application/json"},
        },
        400,
        None,
    ),
    ("settings too large", {"json": {"name": "ok", "settings": {"x": "y" * 70_000}}}, 422, "validation_failed"),
    ("sensitive not a bool", {"json": {"name": "ok", "sensitive": "very"}}, 422, "validation_failed"),
    ("bad type slug", {"json": {"name": "ok", "type": "Not A Slug"}}, 422, "validation_failed"),
    ("huge description", {"json": {"name": "ok", "description": "d" * 10_001}}, 422, "validation_failed"),
    ("body is a list", {"json": [{"name": "ok"}]}, 422, "validation_failed"),
    (
        "malformed JSON",
        {"content": b'{"name": "ok",', "headers": {"Content-Type": "application/json"}},
        400,
        "malformed_json",
    ),
    (
        "text/plain",
        {"content": b'{"name": "ok"}', "headers": {"Content-Type": "text/plain"}},
        415,
        "unsupported_media_type",
    ),
]


@pytest.mark.parametrize(("case", "request_args", "status", "code"), BAD_CREATES, ids=[c[0] for c in BAD_CREATES])
async def test_bad_create_input_is_refused_and_writes_nothing(
    api: Api, case: str, request_args: dict[str, Any], status: int, code: str | None
) -> None:
    ana = await api.user("ana")
    existing = await api.project(ana, name="existing")
    args = dict(request_args)
    headers = {**ana.headers, **args.pop("headers", {})}

    response = await api.client.post(PROJECTS, headers=headers, **args)

    body = problem(response, status, code)
    if status == 422:
        assert body["errors"], body
        assert all(error["loc"][0] == "body" for error in body["errors"])
    assert await list_ids(api.client, ana) == [existing["id"]]


BAD_UPDATES: list[tuple[str, dict[str, Any]]] = [
    ("empty name", {"name": ""}),
    ("whitespace name", {"name": "  "}),
    ("201-char name", {"name": "x" * 201}),
    ("null name", {"name": None}),
    ("name of wrong type", {"name": {"first": "a"}}),
    ("settings not an object", {"settings": [1]}),
    ("settings too deep", {"settings": nested(17)}),
    ("unknown field", {"sensitive_owner": True}),
    ("id is not writable", {"id": "0193a5e2-7c1d-7b3e-9f00-2a4c6d8e0f12"}),
]


@pytest.mark.parametrize(("case", "body"), BAD_UPDATES, ids=[c[0] for c in BAD_UPDATES])
async def test_bad_update_input_is_refused_and_changes_nothing(api: Api, case: str, body: dict[str, Any]) -> None:
    ana = await api.user("ana")
    project = await api.project(ana, name="Original", settings={"keep": True})
    url = f"{PROJECTS}/{project['id']}"

    problem(await api.client.patch(url, json=body, headers=ana.headers), 422, "validation_failed")

    assert (await api.client.get(url, headers=ana.headers)).json() == project


async def test_malformed_and_wrongly_typed_update_bodies(api: Api) -> None:
    ana = await api.user("ana")
    project = await api.project(ana, name="Original")
    url = f"{PROJECTS}/{project['id']}"
    json_header = {**ana.headers, "Content-Type": "application/json"}

    problem(await api.client.patch(url, content=b"{name: 1}", headers=json_header), 400, "malformed_json")
    problem(
        await api.client.patch(url, content=b'{"name": "x"}', headers={**ana.headers, "Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    assert (await api.client.get(url, headers=ana.headers)).json() == project


async def test_garbage_project_id_is_404(api: Api) -> None:
    ana = await api.user("ana")
    project = await api.project(ana, name="Original")
    for garbage in ["not-a-uuid", "1", "0193a5e2-7c1d-7b3e-9f00-2a4c6d8e0f1", "x" * 64, "%00", "' OR 1=1 --"]:
        url = f"{PROJECTS}/{garbage}"
        problem(await api.client.get(url, headers=ana.headers), 404, "not_found")
        problem(await api.client.patch(url, json={"name": "changed"}, headers=ana.headers), 404, "not_found")
        problem(await api.client.delete(url, headers=ana.headers), 404, "not_found")
        problem(await api.client.get(f"{url}/containers", headers=ana.headers), 404, "not_found")

    assert (await api.client.get(f"{PROJECTS}/{project['id']}", headers=ana.headers)).json() == project


async def test_overlong_project_id_is_not_a_server_error(api: Api) -> None:
    ana = await api.user("ana")
    response = await api.client.get(f"{PROJECTS}/{'a' * 5000}", headers=ana.headers)
    assert 400 <= response.status_code < 500
    problem(response, response.status_code)
