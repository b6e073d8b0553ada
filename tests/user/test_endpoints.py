"""The caller's own profile (/users/me) and account administration (/users, superusers only)."""

from __future__ import annotations

import uuid
from typing import Any

from tests.conftest import PASSWORD, Actor, Api, Team, problem

ME = "/api/v1/users/me"
USERS = "/api/v1/users"
NEW_PASSWORD = "an entirely different passphrase"


async def me(api: Api, actor: Actor) -> dict[str, Any]:
    response = await api.client.get(ME, headers=actor.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def login_status(api: Api, email: str, password: str) -> int:
    response = await api.client.post("/api/v1/auth/jwt/login", data={"username": email, "password": password})
    return response.status_code


# --- /users/me --------------------------------------------------------------------------------------------------


async def test_get_me_returns_the_callers_account(api: Api) -> None:
    ana = await api.user("ana")
    await api.user("bea")

    body = await me(api, ana)

    assert body["id"] == ana.id
    assert body["email"] == "ana@example.org"
    assert body["username"] == "ana"
    assert (body["is_active"], body["is_verified"], body["is_superuser"]) == (True, False, False)
    assert "created_at" in body
    assert not {"password", "hashed_password"} & body.keys()


async def test_patch_me_changes_the_username(api: Api) -> None:
    ana = await api.user("ana")

    response = await api.client.patch(ME, json={"username": "Ana_S"}, headers=ana.headers)

    assert response.status_code == 200, response.text
    assert response.json()["username"] == "ana_s"
    assert (await me(api, ana))["username"] == "ana_s"


async def test_patch_me_refuses_a_username_taken(api: Api) -> None:
    ana = await api.user("ana")
    await api.user("bea")

    problem(await api.client.patch(ME, json={"username": "BEA"}, headers=ana.headers), 409, "username_taken")
    assert (await me(api, ana))["username"] == "ana"


async def test_patch_me_needs_the_current_password_for_email_or_password(api: Api) -> None:
    ana = await api.user("ana")
    refused = [
        {"email": "ana.new@example.org"},
        {"password": NEW_PASSWORD},
        {"email": "ana.new@example.org", "current_password": "wrong passphrase!"},
        {"password": NEW_PASSWORD, "current_password": "wrong passphrase!"},
        {"password": NEW_PASSWORD, "current_password": ""},
        {"username": "ana2", "email": "ana.new@example.org", "current_password": PASSWORD.upper()},
    ]
    for change in refused:
        response = await api.client.patch(ME, json=change, headers=ana.headers)

        body = problem(response, 422, "current_password_required")
        assert body["errors"][0]["loc"] == ["body", "current_password"]
        assert PASSWORD.upper() not in response.text

    after = await me(api, ana)
    assert (after["email"], after["username"]) == ("ana@example.org", "ana")
    assert await login_status(api, "ana@example.org", PASSWORD) == 200
    assert await login_status(api, "ana.new@example.org", PASSWORD) == 400
    assert await login_status(api, "ana@example.org", NEW_PASSWORD) == 400


async def test_patch_me_changes_the_password_with_the_current_one(api: Api) -> None:
    ana = await api.user("ana")

    response = await api.client.patch(
        ME, json={"password": NEW_PASSWORD, "current_password": PASSWORD}, headers=ana.headers
    )

    assert response.status_code == 200, response.text
    assert not {"password", "hashed_password", "current_password"} & response.json().keys()
    assert await login_status(api, ana.email, NEW_PASSWORD) == 200
    assert await login_status(api, ana.email, PASSWORD) == 400


async def test_patch_me_applies_the_password_policy(api: Api) -> None:
    ana = await api.user("ana")

    response = await api.client.patch(
        ME, json={"password": "password123", "current_password": PASSWORD}, headers=ana.headers
    )

    problem(response, 422, "invalid_password")
    assert await login_status(api, ana.email, PASSWORD) == 200


async def test_patch_me_changes_the_email_with_the_current_password(api: Api) -> None:
    ana = await api.user("ana")

    response = await api.client.patch(
        ME, json={"email": "Ana.New@Example.org", "current_password": PASSWORD}, headers=ana.headers
    )

    assert response.status_code == 200, response.text
    assert response.json()["email"] == "ana.new@example.org"
    assert response.json()["is_verified"] is False
    assert await login_status(api, "ana.new@example.org", PASSWORD) == 200
    assert await login_status(api, "ana@example.org", PASSWORD) == 400


async def test_patch_me_refuses_an_email_taken(api: Api) -> None:
    ana = await api.user("ana")
    await api.user("bea")

    response = await api.client.patch(
        ME, json={"email": "BEA@example.org", "current_password": PASSWORD}, headers=ana.headers
    )

    problem(response, 409, "email_taken")
    assert (await me(api, ana))["email"] == "ana@example.org"


async def test_patch_me_refuses_privileged_fields(api: Api) -> None:
    ana = await api.user("ana")
    refused: list[dict[str, Any]] = [
        {"is_superuser": True},
        {"is_active": False},
        {"is_verified": True},
        {"username": "ana2", "is_superuser": True},
        {"id": str(uuid.uuid4())},
        {"hashed_password": "x"},
    ]
    for change in refused:
        response = await api.client.patch(ME, json=change, headers=ana.headers)
        body = problem(response, 422, "validation_failed")
        assert [error["loc"][-1] for error in body["errors"]] == [next(k for k in change if k != "username")]

    after = await me(api, ana)
    assert (after["id"], after["username"]) == (ana.id, "ana")
    assert (after["is_superuser"], after["is_active"], after["is_verified"]) == (False, True, False)
    problem(await api.client.get(USERS, headers=ana.headers), 403, "forbidden")


async def test_patch_me_refuses_invalid_values(api: Api) -> None:
    ana = await api.user("ana")
    refused = [
        {"username": None},
        {"email": None},
        {"password": None, "current_password": PASSWORD},
        {"username": "a"},
        {"username": "x" * 5000},
        {"username": "has space"},
        {"username": 42},
        {"email": "not an email", "current_password": PASSWORD},
        {"email": "a" * 5000 + "@example.org", "current_password": PASSWORD},
    ]
    for change in refused:
        response = await api.client.patch(ME, json=change, headers=ana.headers)
        problem(response, 422, "validation_failed")
        assert len(response.content) < 10_000, "the problem document must not echo huge input back"

    after = await me(api, ana)
    assert (after["username"], after["email"]) == ("ana", "ana@example.org")


async def test_me_needs_authentication(api: Api) -> None:
    problem(await api.client.get(ME), 401, "not_authenticated")
    problem(await api.client.patch(ME, json={"username": "ana"}), 401, "not_authenticated")


# --- administration -------------------------------------------------------------------------------------------


async def test_a_normal_user_may_not_administer_users(api: Api) -> None:
    ana = await api.user("ana")
    bea = await api.user("bea")

    problem(await api.client.get(USERS, headers=ana.headers), 403, "forbidden")
    problem(await api.client.get(f"{USERS}/{bea.id}", headers=ana.headers), 403, "forbidden")
    problem(
        await api.client.patch(f"{USERS}/{bea.id}", json={"is_active": False}, headers=ana.headers), 403, "forbidden"
    )
    problem(
        await api.client.patch(f"{USERS}/{ana.id}", json={"is_superuser": True}, headers=ana.headers), 403, "forbidden"
    )
    problem(await api.client.delete(f"{USERS}/{bea.id}", headers=ana.headers), 403, "forbidden")

    assert (await me(api, bea))["is_active"] is True
    assert (await me(api, ana))["is_superuser"] is False


async def test_administration_needs_authentication(api: Api) -> None:
    bea = await api.user("bea")

    problem(await api.client.get(USERS), 401, "not_authenticated")
    problem(await api.client.get(f"{USERS}/{bea.id}"), 401, "not_authenticated")
    problem(await api.client.delete(f"{USERS}/{bea.id}"), 401, "not_authenticated")
    assert (await me(api, bea))["id"] == bea.id


async def test_a_superuser_pages_through_all_users(api: Api) -> None:
    admin = await api.user("admin", superuser=True)
    expected = [admin.id]
    for index in range(6):  # registered only, not logged in: one password hash each keeps the test fast
        response = await api.client.post(
            "/api/v1/auth/register", json={"email": f"user{index}@example.org", "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        expected.append(response.json()["id"])

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3, "include_total": "true"}
        if cursor is not None:
            params["cursor"] = cursor
        response = await api.client.get(USERS, params=params, headers=admin.headers)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["total"] == 7
        assert len(body["items"]) <= 3
        seen += [user["id"] for user in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            assert "link" not in response.headers
            break
        assert response.headers["link"].endswith('>; rel="next"')
        assert f"cursor={cursor}" in response.headers["link"]

    assert pages == 3
    assert len(seen) == len(set(seen))
    assert seen == expected  # oldest first


async def test_users_list_without_total_and_with_a_bad_cursor(api: Api) -> None:
    admin = await api.user("admin", superuser=True)

    body = (await api.client.get(USERS, headers=admin.headers)).json()
    assert "total" not in body
    assert body["next_cursor"] is None
    assert [user["email"] for user in body["items"]] == ["admin@example.org"]

    problem(await api.client.get(USERS, params={"cursor": "garbage"}, headers=admin.headers), 400, "invalid_cursor")
    problem(await api.client.get(USERS, params={"limit": 0}, headers=admin.headers), 422, "validation_failed")
    problem(await api.client.get(USERS, params={"limit": 501}, headers=admin.headers), 422, "validation_failed")


async def test_a_superuser_gets_one_user(api: Api) -> None:
    admin = await api.user("admin", superuser=True)
    bea = await api.user("bea")

    response = await api.client.get(f"{USERS}/{bea.id}", headers=admin.headers)

    assert response.status_code == 200, response.text
    assert response.json() == await me(api, bea)


async def test_a_superuser_changes_is_active_and_is_superuser(api: Api) -> None:
    admin = await api.user("admin", superuser=True)
    bea = await api.user("bea")

    promoted = await api.client.patch(f"{USERS}/{bea.id}", json={"is_superuser": True}, headers=admin.headers)
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["is_superuser"] is True
    assert (await api.client.get(USERS, headers=bea.headers)).status_code == 200

    disabled = await api.client.patch(f"{USERS}/{bea.id}", json={"is_active": False}, headers=admin.headers)
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["is_active"] is False
    assert await login_status(api, bea.email, PASSWORD) == 400

    enabled = await api.client.patch(
        f"{USERS}/{bea.id}", json={"is_active": True, "is_superuser": False}, headers=admin.headers
    )
    assert enabled.status_code == 200, enabled.text
    assert (enabled.json()["is_active"], enabled.json()["is_superuser"]) == (True, False)
    assert await login_status(api, bea.email, PASSWORD) == 200


async def test_admin_patch_refuses_unknown_fields_and_nulls(api: Api) -> None:
    admin = await api.user("admin", superuser=True)
    bea = await api.user("bea")

    for change in ({"hashed_password": "x"}, {"is_active": None}, {"username": None}):
        problem(await api.client.patch(f"{USERS}/{bea.id}", json=change, headers=admin.headers), 422)
    body = (await api.client.get(f"{USERS}/{bea.id}", headers=admin.headers)).json()
    assert (body["username"], body["is_active"]) == ("bea", True)
    assert await login_status(api, bea.email, PASSWORD) == 200


async def test_deleting_a_user_keeps_their_annotations(api: Api, team: Team) -> None:
    admin = await api.user("admin", superuser=True)
    annotation = await api.annotate(team.items[0], team.annotator)
    assert annotation["created_by"] == team.annotator.id

    response = await api.client.delete(f"{USERS}/{team.annotator.id}", headers=admin.headers)

    assert response.status_code == 204
    assert response.content == b""
    problem(await api.client.get(f"{USERS}/{team.annotator.id}", headers=admin.headers), 404, "not_found")
    problem(await api.client.get(ME, headers=team.annotator.headers), 401, "not_authenticated")
    kept = await api.client.get(f"/api/v1/annotations/{annotation['id']}", headers=team.owner.headers)
    assert kept.status_code == 200, kept.text
    assert kept.json()["created_by"] is None
    assert kept.json()["data"] == annotation["data"]
    members = (
        await api.client.get(f"/api/v1/projects/{team.project['id']}/members", headers=team.owner.headers)
    ).json()
    assert team.annotator.id not in [member["user_id"] for member in members["items"]]
    problem(await api.client.delete(f"{USERS}/{team.annotator.id}", headers=admin.headers), 404, "not_found")


async def test_deleting_the_only_owner_of_a_project_is_refused(api: Api) -> None:
    admin = await api.user("admin", superuser=True)
    ana = await api.user("ana")
    project = await api.project(ana, name="Ana's")

    problem(await api.client.delete(f"{USERS}/{ana.id}", headers=admin.headers), 409, "last_owner")

    assert (await api.client.get(f"{USERS}/{ana.id}", headers=admin.headers)).status_code == 200
    assert (await api.client.get(f"/api/v1/projects/{project['id']}", headers=ana.headers)).status_code == 200


async def test_deleting_one_of_two_owners_is_allowed(api: Api) -> None:
    admin = await api.user("admin", superuser=True)
    ana = await api.user("ana")
    bea = await api.user("bea")
    project = await api.project(ana, name="Shared")
    await api.add_member(project, ana, bea, "owner")

    assert (await api.client.delete(f"{USERS}/{ana.id}", headers=admin.headers)).status_code == 204

    assert (await api.client.get(f"/api/v1/projects/{project['id']}", headers=bea.headers)).status_code == 200


async def test_unknown_or_garbage_user_ids_answer_404(api: Api) -> None:
    admin = await api.user("admin", superuser=True)

    for user_id in ("garbage", "0", "00000000-0000-0000-0000-000000000000", str(uuid.uuid4()), "x" * 200):
        url = f"{USERS}/{user_id}"
        problem(await api.client.get(url, headers=admin.headers), 404, "not_found")
        problem(await api.client.patch(url, json={"is_active": False}, headers=admin.headers), 404, "not_found")
        problem(await api.client.delete(url, headers=admin.headers), 404, "not_found")
