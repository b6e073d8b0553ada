"""The audit trail: written with the change it records (and rolled back with it), never holding secrets,
readable by superusers and by a project's owners and managers, filtered and paginated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from annotation_platform.audit.service import email_hash
from annotation_platform.main import create_app
from tests.conftest import PASSWORD, Actor, Api, Team, make_settings, problem, serve

AUDIT = "/api/v1/audit-events"


async def events(api: Api, actor: Actor, **params: Any) -> list[dict[str, Any]]:
    response = await api.client.get(AUDIT, params={"limit": 500, **params}, headers=actor.headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_a_change_is_recorded_with_who_what_when_and_where(api: Api, team: Team) -> None:
    response = await api.client.patch(
        f"/api/v1/projects/{team.project['id']}",
        json={"description": "new words"},
        headers={**team.manager.headers, "X-Request-ID": "req-audit-1", "User-Agent": "audit-test/1"},
    )
    assert response.status_code == 200
    [event] = await events(api, team.owner, action="project.update")
    assert event["actor_user_id"] == team.manager.id
    assert event["actor_api_key_id"] is None
    assert (event["resource_type"], event["resource_id"], event["project_id"]) == (
        "project",
        team.project["id"],
        team.project["id"],
    )
    assert event["before"] == {"description": ""}
    assert event["after"]["description"] == "new words"
    assert (event["ip"], event["user_agent"], event["request_id"]) == ("127.0.0.1", "audit-test/1", "req-audit-1")


async def test_a_refused_change_leaves_no_event(api: Api, team: Team) -> None:
    other = await api.container(team.project, team.owner, name="taken")
    response = await api.client.patch(
        f"/api/v1/containers/{team.container['id']}", json={"name": other["name"]}, headers=team.owner.headers
    )
    assert response.status_code == 409
    assert await events(api, team.owner, action="container.update") == []


async def test_every_kind_of_change_is_attributed(api: Api, team: Team) -> None:
    item = team.items[0]
    annotation = await api.annotate(item, team.annotator)
    await api.client.patch(
        f"/api/v1/annotations/{annotation['id']}", json={"data": {"thread_id": "9"}}, headers=team.reviewer.headers
    )
    await api.client.delete(f"/api/v1/items/{team.items[1]['id']}", headers=team.manager.headers)
    newcomer = await api.user("newcomer")
    await api.add_member(team.project, team.owner, newcomer, "viewer")
    await api.client.put(
        f"/api/v1/projects/{team.project['id']}/members/{newcomer.id}",
        json={"role": "reviewer"},
        headers=team.owner.headers,
    )
    seen = {(event["action"], event["actor_user_id"]) for event in await events(api, team.owner)}
    assert {
        ("project.create", team.owner.id),
        ("container.create", team.owner.id),
        ("item.bulk_create", team.owner.id),
        ("annotation.create", team.annotator.id),
        ("annotation.update", team.reviewer.id),
        ("item.delete", team.manager.id),
        ("member.add", team.owner.id),
        ("member.role_change", team.owner.id),
    } <= seen
    [change] = await events(api, team.owner, action="annotation.update")
    assert (change["before"], change["after"]) == (
        {"data": {"thread_id": "1"}, "version": 1},
        {"data": {"thread_id": "9"}, "version": 2},
    )
    [role] = await events(api, team.owner, action="member.role_change", resource_id=newcomer.id)
    assert (role["before"], role["after"]) == ({"role": "viewer"}, {"role": "reviewer"})


async def test_secrets_never_reach_the_trail(api: Api) -> None:
    root = await api.user("root", superuser=True)
    new_password = "a brand new passphrase"
    changed = await api.client.patch(
        "/api/v1/users/me", json={"password": new_password, "current_password": PASSWORD}, headers=root.headers
    )
    assert changed.status_code == 200, changed.text
    key = await api.client.post("/api/v1/api-keys", json={"name": "k", "scopes": ["read"]}, headers=root.headers)
    secret = key.json()["key"]
    trail = await events(api, root)
    [password_change] = [event for event in trail if event["action"] == "user.update"]
    assert password_change["after"] == {"password_changed": True}
    [key_event] = [event for event in trail if event["action"] == "api_key.create"]
    assert key_event["after"]["prefix"] == key.json()["prefix"]
    async with api.engine.connect() as connection:
        dumped = " ".join(str(row) for row in (await connection.execute(text("SELECT * FROM audit_events"))).all())
    random_part = secret.removeprefix(key.json()["prefix"] + "_")  # may itself contain "_"
    for value in (new_password, PASSWORD, secret, random_part):
        assert value not in dumped


async def test_email_addresses_reach_the_trail_only_as_hashes(api: Api) -> None:
    """So that a deleted account's old and new addresses do not outlive it in the append-only trail."""
    root = await api.user("root", superuser=True)
    ana = await api.user("ana")
    changed = await api.client.patch(
        "/api/v1/users/me", json={"email": "ana.new@example.org", "current_password": PASSWORD}, headers=ana.headers
    )
    assert changed.status_code == 200, changed.text
    assert (await api.client.delete(f"/api/v1/users/{ana.id}", headers=root.headers)).status_code == 204

    [update] = [event for event in await events(api, root) if event["action"] == "user.update"]
    assert update["before"]["email_hash"] == email_hash(ana.email)
    assert update["after"]["email_hash"] == email_hash("ana.new@example.org")
    async with api.engine.connect() as connection:
        dumped = " ".join(str(row) for row in (await connection.execute(text("SELECT * FROM audit_events"))).all())
    for address in (ana.email, "ana.new@example.org"):
        assert address not in dumped


async def test_failed_logins_and_lockouts_are_recorded_though_the_request_fails(
    api: Api, database_url: str, tmp_path: Path
) -> None:
    root = await api.user("root", superuser=True)
    ana = await api.user("ana")
    async with serve(create_app(make_settings(database_url, tmp_path, login_lockout_attempts=5))) as http:
        for _ in range(5):
            response = await http.post(
                "/api/v1/auth/jwt/login", data={"username": ana.email, "password": "not the passphrase"}
            )
            assert response.status_code == 400
    failed = await events(api, root, action="auth.login_failed")
    locked = await events(api, root, action="auth.login_locked")
    assert len(failed) == 4
    assert len(locked) == 1
    assert {event["resource_id"] for event in failed + locked} == {ana.id}
    assert ana.email not in str(failed + locked)
    assert locked[0]["actor_user_id"] is None


async def test_who_sees_which_events(api: Api, team: Team) -> None:
    root = await api.user("root", superuser=True)
    elsewhere = await api.project(team.stranger, name="Elsewhere")
    mine = {"project_id": team.project["id"]}
    assert {event["project_id"] for event in await events(api, team.manager)} == {team.project["id"]}
    assert {event["project_id"] for event in await events(api, team.owner, **mine)} == {team.project["id"]}
    problem(await api.client.get(AUDIT, params=mine, headers=team.reviewer.headers), 403, "forbidden")
    problem(await api.client.get(AUDIT, params=mine, headers=team.stranger.headers), 404)
    assert await events(api, team.viewer) == []
    stranger_sees = {event["project_id"] for event in await events(api, team.stranger)}
    assert stranger_sees == {elsewhere["id"]}
    everything = await events(api, root)
    assert {team.project["id"], elsewhere["id"], None} <= {event["project_id"] for event in everything}


async def test_filters_and_cursor_pages(api: Api, team: Team) -> None:
    for index in range(5):
        await api.client.patch(
            f"/api/v1/projects/{team.project['id']}", json={"description": f"v{index}"}, headers=team.owner.headers
        )
    updates = await events(api, team.owner, action="project.update", actor_user_id=team.owner.id)
    assert [event["after"]["description"] for event in updates] == [f"v{index}" for index in range(5)]
    pages: list[dict[str, Any]] = []
    params: dict[str, Any] = {"action": "project.update", "limit": 2, "include_total": "true"}
    while True:
        response = await api.client.get(AUDIT, params=params, headers=team.owner.headers)
        body = response.json()
        assert body["total"] == 5
        pages.extend(body["items"])
        if body["next_cursor"] is None:
            break
        params["cursor"] = body["next_cursor"]
    assert [event["id"] for event in pages] == [event["id"] for event in updates]
    later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    assert await events(api, team.owner, since=later) == []
    assert len(await events(api, team.owner, until=later, action="project.update")) == 5
    on_containers = await events(api, team.owner, resource_type="container")
    assert {event["action"] for event in on_containers} == {"container.create", "item.bulk_create"}
    problem(await api.client.get(AUDIT, params={"since": "yesterday"}, headers=team.owner.headers), 422)


async def test_the_trail_is_append_only_on_postgresql(api: Api, team: Team, backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("the append-only trigger is PostgreSQL's; SQLite relies on the application")
    for statement in ("UPDATE audit_events SET action = 'x'", "DELETE FROM audit_events"):
        with pytest.raises(DBAPIError, match="append-only"):
            async with api.engine.begin() as connection:
                await connection.execute(text(statement))
    assert len(await events(api, team.owner)) > 0
