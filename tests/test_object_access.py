"""Object-level access (BOLA) and mass assignment: ids from another project behave as ids that do not exist,
and no body can raise its sender's privileges."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from tests.conftest import PASSWORD, Actor, Api, Team
from tests.data_import.helpers import ROOM, chat_csv, upload


@dataclass
class Elsewhere:
    """Another team's project, which the first team's manager is not a member of."""

    owner: Actor
    project: dict[str, Any]
    container: dict[str, Any]
    items: list[dict[str, Any]]
    annotation: dict[str, Any]


@pytest.fixture
async def elsewhere(api: Api, team: Team) -> Elsewhere:
    owner = await api.user("other-owner")
    project = await api.project(owner, name="Secret")
    container = await api.container(project, owner)
    items = await api.items(container, owner, 2)
    annotation = await api.annotate(items[0], owner)
    return Elsewhere(owner=owner, project=project, container=container, items=items, annotation=annotation)


def same_answer(foreign: Any, unknown: Any) -> None:
    """The answer for a foreign id equals the answer for an id nobody has (apart from the ids it names)."""
    assert foreign.status_code == unknown.status_code, (foreign.text, unknown.text)
    assert foreign.status_code >= 400, foreign.text
    assert foreign.json()["code"] == unknown.json()["code"]


async def count(api: Api, table: str) -> int:
    async with api.engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


@pytest.mark.parametrize(
    ("method", "template", "body"),
    [
        ("GET", "/api/v1/projects/{project}", None),
        ("PATCH", "/api/v1/projects/{project}", {"name": "mine now"}),
        ("DELETE", "/api/v1/projects/{project}", None),
        ("GET", "/api/v1/projects/{project}/members", None),
        ("GET", "/api/v1/containers/{container}", None),
        ("PATCH", "/api/v1/containers/{container}", {"name": "mine now"}),
        ("DELETE", "/api/v1/containers/{container}", None),
        ("GET", "/api/v1/containers/{container}/items", None),
        ("POST", "/api/v1/containers/{container}/items", {"external_id": "x", "content": "planted"}),
        ("GET", "/api/v1/items/{item}", None),
        ("PATCH", "/api/v1/items/{item}", {"content": "changed"}),
        ("DELETE", "/api/v1/items/{item}", None),
        ("POST", "/api/v1/items/{item}/annotations", {"type": "thread", "data": {}}),
        ("GET", "/api/v1/annotations/{annotation}", None),
        ("PATCH", "/api/v1/annotations/{annotation}", {"data": {"x": 1}}),
        ("DELETE", "/api/v1/annotations/{annotation}", None),
        ("POST", "/api/v1/projects/{project}/exports", {"format": "jsonl"}),
    ],
)
async def test_path_ids_from_another_project_answer_404(
    api: Api, team: Team, elsewhere: Elsewhere, method: str, template: str, body: Any
) -> None:
    foreign = {
        "project": elsewhere.project["id"],
        "container": elsewhere.container["id"],
        "item": elsewhere.items[0]["id"],
        "annotation": elsewhere.annotation["id"],
    }
    unknown = dict.fromkeys(foreign, str(uuid.uuid4()))
    before = [await count(api, table) for table in ("projects", "containers", "items", "annotations")]
    response = await api.client.request(method, template.format(**foreign), json=body, headers=team.manager.headers)
    baseline = await api.client.request(method, template.format(**unknown), json=body, headers=team.manager.headers)
    assert response.status_code == 404
    same_answer(response, baseline)
    assert [await count(api, table) for table in ("projects", "containers", "items", "annotations")] == before
    unchanged = await api.client.get(
        f"/api/v1/annotations/{elsewhere.annotation['id']}", headers=elsewhere.owner.headers
    )
    assert unchanged.json()["version"] == 1


async def test_bulk_annotations_naming_another_projects_item_write_nothing(
    api: Api, team: Team, elsewhere: Elsewhere
) -> None:
    url = f"/api/v1/containers/{team.container['id']}/annotations/bulk"

    def body(item_id: str) -> dict[str, Any]:
        rows = [
            {"item_id": team.items[0]["id"], "type": "t", "data": {}},
            {"item_id": item_id, "type": "t", "data": {}},
        ]
        return {"items": rows}

    foreign = await api.client.post(url, json=body(elsewhere.items[1]["id"]), headers=team.manager.headers)
    unknown = await api.client.post(url, json=body(str(uuid.uuid4())), headers=team.manager.headers)
    same_answer(foreign, unknown)
    assert [error["loc"] for error in foreign.json()["errors"]] == [["body", "items", 1, "item_id"]]
    assert await count(api, "annotations") == 1  # elsewhere's own


async def test_a_parent_from_another_project_is_refused_like_an_unknown_one(
    api: Api, team: Team, elsewhere: Elsewhere
) -> None:
    url = f"/api/v1/containers/{team.container['id']}/items"
    headers = team.manager.headers
    foreign = await api.client.post(
        url, json={"external_id": "c1", "content": "x", "parent_id": elsewhere.items[0]["id"]}, headers=headers
    )
    unknown = await api.client.post(
        url, json={"external_id": "c2", "content": "x", "parent_id": str(uuid.uuid4())}, headers=headers
    )
    same_answer(foreign, unknown)
    bulk = await api.client.post(
        f"{url}/bulk",
        json={"items": [{"external_id": "c3", "content": "x", "parent_id": elsewhere.items[0]["id"]}]},
        headers=headers,
    )
    assert bulk.status_code == 422, bulk.text
    assert await count(api, "items") == len(team.items) + len(elsewhere.items)


async def test_a_created_by_filter_only_narrows_the_projects_own_annotations(
    api: Api, team: Team, elsewhere: Elsewhere
) -> None:
    response = await api.client.get(
        f"/api/v1/containers/{team.container['id']}/annotations",
        params={"created_by": elsewhere.owner.id},
        headers=team.viewer.headers,
    )
    assert response.status_code == 200
    assert response.json()["items"] == []


async def test_an_import_cannot_credit_someone_outside_the_project(api: Api, team: Team, elsewhere: Elsewhere) -> None:
    foreign = await upload(api.client, team.container, team.manager, chat_csv(ROOM), annotator=elsewhere.owner.username)
    unknown = await upload(api.client, team.container, team.manager, chat_csv(ROOM), annotator="nobody-at-all")
    same_answer(foreign, unknown)
    assert foreign.json()["code"] == "annotator_unknown"
    assert await count(api, "jobs") == 0


async def test_an_export_cannot_name_another_projects_container(api: Api, team: Team, elsewhere: Elsewhere) -> None:
    url = f"/api/v1/projects/{team.project['id']}/exports"
    foreign = await api.client.post(
        url, json={"format": "jsonl", "container_ids": [elsewhere.container["id"]]}, headers=team.manager.headers
    )
    unknown = await api.client.post(
        url, json={"format": "jsonl", "container_ids": [str(uuid.uuid4())]}, headers=team.manager.headers
    )
    same_answer(foreign, unknown)
    assert await count(api, "jobs") == 0


async def test_ownership_cannot_go_to_someone_outside_the_project(api: Api, team: Team, elsewhere: Elsewhere) -> None:
    url = f"/api/v1/projects/{team.project['id']}/members/transfer-ownership"
    foreign = await api.client.post(url, json={"user_id": elsewhere.owner.id}, headers=team.owner.headers)
    unknown = await api.client.post(url, json={"user_id": str(uuid.uuid4())}, headers=team.owner.headers)
    assert foreign.status_code == 404
    same_answer(foreign, unknown)


@pytest.mark.parametrize(
    ("method", "template", "body", "smuggled", "status"),
    [
        (
            "POST",
            "/api/v1/auth/register",
            {"email": "m@example.org", "password": PASSWORD, "is_superuser": True},
            None,
            422,
        ),
        (
            "POST",
            "/api/v1/auth/register",
            {"email": "m@example.org", "password": PASSWORD, "is_verified": True},
            None,
            422,
        ),
        ("PATCH", "/api/v1/users/me", {"is_superuser": True}, None, 422),
        ("PATCH", "/api/v1/users/me", {"is_verified": True}, None, 422),
        ("PATCH", "/api/v1/users/me", {"username": "someone", "is_active": True}, None, 422),
        ("POST", "/api/v1/projects", {"name": "p", "my_role": "owner"}, None, 422),
        ("POST", "/api/v1/projects", {"name": "p", "created_by": "{owner}"}, None, 422),
        ("PUT", "/api/v1/projects/{project}/members/{me}", {"role": "viewer", "user_id": "{owner}"}, None, 422),
        ("POST", "/api/v1/items/{item}/annotations", {"type": "t", "data": {}, "created_by": "{owner}"}, None, 422),
        ("POST", "/api/v1/items/{item}/annotations", {"type": "t", "data": {}, "version": 7}, None, 422),
        ("PATCH", "/api/v1/annotations/{annotation}", {"created_by": "{owner}"}, None, 422),
        # Where the role falls short, the 403 comes first; a manager sending the same body gets the 422.
        ("PATCH", "/api/v1/projects/{project}", {"name": "p", "my_role": "owner"}, "manager", 422),
        (
            "POST",
            "/api/v1/projects/{project}/members/transfer-ownership",
            {"user_id": "{me}", "role": "owner"},
            None,
            403,
        ),
    ],
)
async def test_no_body_can_set_privileges(
    api: Api, team: Team, method: str, template: str, body: Any, smuggled: str | None, status: int
) -> None:
    annotation = await api.annotate(team.items[0], team.annotator)
    names = {
        "project": team.project["id"],
        "item": team.items[0]["id"],
        "annotation": annotation["id"],
        "owner": team.owner.id,
        "me": team.annotator.id,
    }
    sender = getattr(team, smuggled) if smuggled else team.annotator
    filled = {key: value.format(**names) if isinstance(value, str) else value for key, value in body.items()}
    response = await api.client.request(method, template.format(**names), json=filled, headers=sender.headers)
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["code"] == "validation_failed"
        extra = [error["loc"][-1] for error in response.json()["errors"] if error["type"] == "extra_forbidden"]
        assert extra == [list(body)[-1]]
    for actor in (team.annotator, team.manager):
        me = (await api.client.get("/api/v1/users/me", headers=actor.headers)).json()
        assert (me["is_superuser"], me["is_verified"]) == (False, False)
    members = await api.client.get(f"/api/v1/projects/{team.project['id']}/members", headers=team.owner.headers)
    roles = {member["user_id"]: member["role"] for member in members.json()["items"]}
    assert (roles[team.annotator.id], roles[team.manager.id], roles[team.owner.id]) == ("annotator", "manager", "owner")


async def test_a_member_cannot_raise_their_own_role(api: Api, team: Team) -> None:
    for actor, role in ((team.annotator, "reviewer"), (team.reviewer, "manager"), (team.manager, "owner")):
        response = await api.client.put(
            f"/api/v1/projects/{team.project['id']}/members/{actor.id}", json={"role": role}, headers=actor.headers
        )
        assert response.status_code == 403, response.text
    roles = await api.client.get(f"/api/v1/projects/{team.project['id']}/members", headers=team.owner.headers)
    assert {member["username"]: member["role"] for member in roles.json()["items"]}["manager"] == "manager"


async def test_ownership_transfer_swaps_roles_and_keeps_one_owner(api: Api, team: Team) -> None:
    url = f"/api/v1/projects/{team.project['id']}/members/transfer-ownership"
    response = await api.client.post(url, json={"user_id": team.manager.id}, headers=team.owner.headers)
    assert response.status_code == 200, response.text
    assert (response.json()["user_id"], response.json()["role"]) == (team.manager.id, "owner")
    members = await api.client.get(f"/api/v1/projects/{team.project['id']}/members", headers=team.owner.headers)
    roles = {member["user_id"]: member["role"] for member in members.json()["items"]}
    assert (roles[team.owner.id], roles[team.manager.id]) == ("manager", "owner")
    # The former owner is now a manager: no more transfers, no project deletion.
    again = await api.client.post(url, json={"user_id": team.owner.id}, headers=team.owner.headers)
    assert again.status_code == 403
    gone = await api.client.delete(f"/api/v1/projects/{team.project['id']}", headers=team.owner.headers)
    assert gone.status_code == 403
    # The new owner cannot leave: they are the last one.
    leave = await api.client.delete(
        f"/api/v1/projects/{team.project['id']}/members/{team.manager.id}", headers=team.manager.headers
    )
    assert leave.status_code == 409
    assert leave.json()["code"] == "last_owner"


async def test_transferring_to_oneself_changes_nothing(api: Api, team: Team) -> None:
    url = f"/api/v1/projects/{team.project['id']}/members/transfer-ownership"
    response = await api.client.post(url, json={"user_id": team.owner.id}, headers=team.owner.headers)
    assert response.status_code == 200, response.text
    assert response.json()["role"] == "owner"
