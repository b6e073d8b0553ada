"""Project membership: listing members, adding and changing roles, removing, and keeping an owner."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import Actor, Api, Team, problem


def members_url(team: Team, user_id: str | None = None) -> str:
    url = f"/api/v1/projects/{team.project['id']}/members"
    return f"{url}/{user_id}" if user_id is not None else url


async def roles(api: Api, team: Team, by: Actor | None = None) -> dict[str, str]:
    """user id -> role, as the owner (or `by`) sees the member list."""
    headers = (by or team.owner).headers
    response = await api.client.get(members_url(team), params={"limit": 500}, headers=headers)
    assert response.status_code == 200, response.text
    return {member["user_id"]: member["role"] for member in response.json()["items"]}


def team_roles(team: Team) -> dict[str, str]:
    return {
        team.owner.id: "owner",
        team.manager.id: "manager",
        team.reviewer.id: "reviewer",
        team.annotator.id: "annotator",
        team.viewer.id: "viewer",
    }


async def put(api: Api, team: Team, by: Actor, member: Actor | str, role: Any) -> httpx.Response:
    user_id = member if isinstance(member, str) else member.id
    return await api.client.put(members_url(team, user_id), json={"role": role}, headers=by.headers)


async def remove(api: Api, team: Team, by: Actor, member: Actor | str) -> httpx.Response:
    user_id = member if isinstance(member, str) else member.id
    return await api.client.delete(members_url(team, user_id), headers=by.headers)


async def sees_project(api: Api, team: Team, actor: Actor) -> int:
    return (await api.client.get(f"/api/v1/projects/{team.project['id']}", headers=actor.headers)).status_code


# --- listing ----------------------------------------------------------------------------------------------------


async def test_any_member_lists_the_members(api: Api, team: Team) -> None:
    for actor in (team.owner, team.manager, team.reviewer, team.annotator, team.viewer):
        response = await api.client.get(members_url(team), headers=actor.headers)

        assert response.status_code == 200, (actor.username, response.text)
        body = response.json()
        assert body["next_cursor"] is None
        assert {member["user_id"]: member["role"] for member in body["items"]} == team_roles(team), actor.username
        by_id = {member["user_id"]: member for member in body["items"]}
        assert by_id[team.manager.id]["username"] == "manager"
        assert all(member["added_at"] for member in body["items"])


async def test_members_list_pages_with_cursors(api: Api, team: Team) -> None:
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2, "include_total": "true"}
    pages = 0
    while True:
        response = await api.client.get(members_url(team), params=params, headers=team.viewer.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == 5
        seen += [member["user_id"] for member in body["items"]]
        pages += 1
        if body["next_cursor"] is None:
            assert "link" not in response.headers
            break
        assert response.headers["link"].endswith('>; rel="next"')
        params = {**params, "cursor": body["next_cursor"]}

    assert pages == 3
    assert len(seen) == len(set(seen)) == 5
    assert set(seen) == set(team_roles(team))
    response = await api.client.get(members_url(team), params={"cursor": "nope"}, headers=team.owner.headers)
    problem(response, 400, "invalid_cursor")


async def test_a_stranger_may_not_see_the_members(api: Api, team: Team) -> None:
    problem(await api.client.get(members_url(team), headers=team.stranger.headers), 404, "not_found")


async def test_listing_members_needs_authentication(api: Api, team: Team) -> None:
    problem(await api.client.get(members_url(team)), 401, "not_authenticated")


async def test_members_of_an_unknown_project_answer_404(api: Api, team: Team) -> None:
    for project_id in ("garbage", str(uuid.uuid4()), team.container["id"]):
        url = f"/api/v1/projects/{project_id}/members"
        problem(await api.client.get(url, headers=team.owner.headers), 404, "not_found")
        response = await api.client.put(
            f"{url}/{team.stranger.id}", json={"role": "viewer"}, headers=team.owner.headers
        )
        problem(response, 404, "not_found")


# --- adding and changing ----------------------------------------------------------------------------------------


async def test_put_adds_a_member_then_changes_their_role(api: Api, team: Team) -> None:
    assert await sees_project(api, team, team.stranger) == 404

    added = await put(api, team, team.owner, team.stranger, "annotator")

    assert added.status_code == 201, added.text
    assert added.headers["location"] == f"/api/v1/projects/{team.project['id']}/members/{team.stranger.id}"
    body = added.json()
    assert (body["user_id"], body["username"], body["role"]) == (team.stranger.id, "stranger", "annotator")
    assert body["added_at"]
    assert await sees_project(api, team, team.stranger) == 200

    changed = await put(api, team, team.owner, team.stranger, "reviewer")

    assert changed.status_code == 200, changed.text
    assert "location" not in changed.headers
    assert changed.json()["role"] == "reviewer"
    assert changed.json()["added_at"] == body["added_at"]
    assert (await roles(api, team))[team.stranger.id] == "reviewer"

    unchanged = await put(api, team, team.owner, team.stranger, "reviewer")
    assert unchanged.status_code == 200
    assert (await roles(api, team))[team.stranger.id] == "reviewer"


async def test_the_owner_grants_manager_and_owner(api: Api, team: Team) -> None:
    assert (await put(api, team, team.owner, team.stranger, "manager")).status_code == 201
    assert (await put(api, team, team.owner, team.annotator, "owner")).status_code == 200
    assert (await put(api, team, team.owner, team.manager, "viewer")).status_code == 200

    current = await roles(api, team)
    assert current[team.stranger.id] == "manager"
    assert current[team.annotator.id] == "owner"
    assert current[team.manager.id] == "viewer"


async def test_a_manager_assigns_roles_below_manager(api: Api, team: Team) -> None:
    added = await put(api, team, team.manager, team.stranger, "viewer")
    assert added.status_code == 201, added.text
    assert (await roles(api, team))[team.stranger.id] == "viewer"

    for role in ("annotator", "reviewer", "viewer"):
        for member in (team.stranger, team.annotator):
            changed = await put(api, team, team.manager, member, role)
            assert changed.status_code == 200, changed.text
        current = await roles(api, team)
        assert (current[team.stranger.id], current[team.annotator.id]) == (role, role)


async def test_a_manager_may_not_grant_or_change_manager_and_owner(api: Api, team: Team) -> None:
    refused = [
        (team.stranger, "manager"),
        (team.stranger, "owner"),
        (team.annotator, "manager"),
        (team.viewer, "owner"),
        (team.manager, "owner"),
        (team.owner, "viewer"),
    ]
    for target, role in refused:
        problem(await put(api, team, team.manager, target, role), 403, "forbidden")
    problem(await remove(api, team, team.manager, team.owner), 403, "forbidden")

    assert await roles(api, team) == team_roles(team)


async def test_a_manager_may_not_change_another_manager(api: Api, team: Team) -> None:
    await api.add_member(team.project, team.owner, team.stranger, "manager")

    problem(await put(api, team, team.manager, team.stranger, "viewer"), 403, "forbidden")
    problem(await remove(api, team, team.manager, team.stranger), 403, "forbidden")

    assert (await roles(api, team))[team.stranger.id] == "manager"


async def test_members_below_manager_may_not_change_membership(api: Api, team: Team) -> None:
    for actor in (team.reviewer, team.annotator, team.viewer):
        other = team.annotator if actor is not team.annotator else team.viewer
        problem(await put(api, team, actor, team.stranger, "viewer"), 403, "forbidden")
        problem(await put(api, team, actor, other, "reviewer"), 403, "forbidden")
        problem(await put(api, team, actor, actor, "owner"), 403, "forbidden")
        problem(await remove(api, team, actor, other), 403, "forbidden")

    assert await roles(api, team) == team_roles(team)


async def test_a_stranger_may_not_add_themself(api: Api, team: Team) -> None:
    problem(await put(api, team, team.stranger, team.stranger, "owner"), 404, "not_found")
    response = await api.client.put(members_url(team, team.stranger.id), json={"role": "viewer"})
    problem(response, 401, "not_authenticated")

    assert await roles(api, team) == team_roles(team)


async def test_adding_an_unknown_user_answers_404(api: Api, team: Team) -> None:
    for user_id in (str(uuid.uuid4()), team.project["id"], "garbage", "x" * 64):
        problem(await put(api, team, team.owner, user_id, "viewer"), 404, "not_found")

    assert await roles(api, team) == team_roles(team)


async def test_adding_a_deactivated_user_answers_404(api: Api, team: Team) -> None:
    admin = await api.user("admin", superuser=True)
    deactivated = await api.client.patch(
        f"/api/v1/users/{team.stranger.id}", json={"is_active": False}, headers=admin.headers
    )
    assert deactivated.status_code == 200, deactivated.text

    problem(await put(api, team, team.owner, team.stranger, "viewer"), 404, "not_found")
    assert await roles(api, team) == team_roles(team)


async def test_an_invalid_role_answers_422(api: Api, team: Team) -> None:
    for body in ({"role": "admin"}, {"role": "Owner"}, {"role": None}, {"role": 1}, {}, ["viewer"]):
        for target in (team.stranger, team.annotator):
            response = await api.client.put(members_url(team, target.id), json=body, headers=team.owner.headers)
            assert problem(response, 422, "validation_failed")["errors"], body

    assert await roles(api, team) == team_roles(team)


async def test_put_refuses_unknown_fields_non_json_and_malformed_json(api: Api, team: Team) -> None:
    url = members_url(team, team.stranger.id)
    unknown = await api.client.put(url, json={"role": "viewer", "is_owner": True}, headers=team.owner.headers)
    problem(unknown, 422, "validation_failed")
    not_json = await api.client.put(
        url, content=b'{"role": "viewer"}', headers={**team.owner.headers, "Content-Type": "text/plain"}
    )
    problem(not_json, 415, "unsupported_media_type")
    malformed = await api.client.put(
        url, content=b'{"role": ', headers={**team.owner.headers, "Content-Type": "application/json"}
    )
    problem(malformed, 400, "malformed_json")

    assert await roles(api, team) == team_roles(team)


# --- the last owner ---------------------------------------------------------------------------------------------


async def test_the_last_owner_may_not_demote_themself(api: Api, team: Team) -> None:
    for role in ("manager", "reviewer", "annotator", "viewer"):
        problem(await put(api, team, team.owner, team.owner, role), 409, "last_owner")

    assert await roles(api, team) == team_roles(team)


async def test_the_last_owner_may_not_leave(api: Api, team: Team) -> None:
    problem(await remove(api, team, team.owner, team.owner), 409, "last_owner")

    assert await roles(api, team) == team_roles(team)
    assert await sees_project(api, team, team.owner) == 200


async def test_a_superuser_may_not_remove_the_last_owner_either(api: Api, team: Team) -> None:
    admin = await api.user("admin", superuser=True)

    problem(await put(api, team, admin, team.owner, "viewer"), 409, "last_owner")
    problem(await remove(api, team, admin, team.owner), 409, "last_owner")

    assert await roles(api, team) == team_roles(team)


async def test_with_two_owners_one_may_step_down(api: Api, team: Team) -> None:
    await api.add_member(team.project, team.owner, team.manager, "owner")

    stepped_down = await put(api, team, team.owner, team.owner, "viewer")

    assert stepped_down.status_code == 200, stepped_down.text
    current = await roles(api, team, by=team.manager)
    assert (current[team.owner.id], current[team.manager.id]) == ("viewer", "owner")
    # The other owner is now the last one, and the former owner has a viewer's rights only.
    problem(await put(api, team, team.manager, team.manager, "manager"), 409, "last_owner")
    problem(await put(api, team, team.owner, team.owner, "owner"), 403, "forbidden")
    problem(await put(api, team, team.owner, team.stranger, "viewer"), 403, "forbidden")
    assert await roles(api, team, by=team.manager) == current


async def test_with_two_owners_one_may_leave(api: Api, team: Team) -> None:
    await api.add_member(team.project, team.owner, team.manager, "owner")

    response = await remove(api, team, team.owner, team.owner)

    assert response.status_code == 204, response.text
    assert await sees_project(api, team, team.owner) == 404
    assert await sees_project(api, team, team.manager) == 200
    problem(await remove(api, team, team.manager, team.manager), 409, "last_owner")


# --- removing ---------------------------------------------------------------------------------------------------


async def test_any_member_may_leave(api: Api, team: Team) -> None:
    expected = team_roles(team)
    for actor in (team.viewer, team.annotator, team.reviewer, team.manager):
        response = await remove(api, team, actor, actor)

        assert response.status_code == 204, (actor.username, response.text)
        assert response.content == b""
        assert await sees_project(api, team, actor) == 404
        problem(await api.client.get(members_url(team), headers=actor.headers), 404, "not_found")
        del expected[actor.id]
        assert await roles(api, team) == expected


async def test_a_manager_removes_an_annotator(api: Api, team: Team) -> None:
    response = await remove(api, team, team.manager, team.annotator)

    assert response.status_code == 204, response.text
    assert team.annotator.id not in await roles(api, team)
    assert await sees_project(api, team, team.annotator) == 404
    response = await api.client.get(f"/api/v1/containers/{team.container['id']}", headers=team.annotator.headers)
    problem(response, 404, "not_found")
    problem(await remove(api, team, team.manager, team.annotator), 404, "not_found")


async def test_the_owner_removes_a_manager(api: Api, team: Team) -> None:
    response = await remove(api, team, team.owner, team.manager)

    assert response.status_code == 204, response.text
    assert await sees_project(api, team, team.manager) == 404


async def test_removing_a_non_member_answers_404(api: Api, team: Team) -> None:
    for target in (team.stranger.id, str(uuid.uuid4()), "garbage"):
        problem(await remove(api, team, team.owner, target), 404, "not_found")

    assert await roles(api, team) == team_roles(team)


async def test_a_stranger_may_not_remove_members(api: Api, team: Team) -> None:
    problem(await remove(api, team, team.stranger, team.viewer), 404, "not_found")
    problem(await api.client.delete(members_url(team, team.viewer.id)), 401, "not_authenticated")

    assert await roles(api, team) == team_roles(team)
