"""Login sessions: listed with where and when, revocable one by one; a password change ends the others."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import update

from annotation_platform.models import AuthSession
from tests.conftest import PASSWORD, Actor, Api, problem

SESSIONS = "/api/v1/users/me/sessions"


async def login(api: Api, actor: Actor, user_agent: str = "test-agent") -> dict[str, str]:
    response = await api.client.post(
        "/api/v1/auth/jwt/login",
        data={"username": actor.email, "password": PASSWORD},
        headers={"User-Agent": user_agent},
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def sessions(api: Api, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await api.client.get(SESSIONS, headers=headers)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_sessions_are_listed_with_where_and_when(api: Api) -> None:
    ana = await api.user("ana")
    laptop = await login(api, ana, "Firefox/140")
    listed = await sessions(api, laptop)
    assert len(listed) == 2  # the fixture's login and this one
    mine = [entry for entry in listed if entry["current"]]
    assert len(mine) == 1
    assert (mine[0]["ip"], mine[0]["user_agent"]) == ("127.0.0.1", "Firefox/140")
    assert set(mine[0]) == {"id", "created_at", "last_seen_at", "expires_at", "ip", "user_agent", "current"}
    bea = await api.user("bea")
    assert len(await sessions(api, bea.headers)) == 1


async def test_revoking_a_session_ends_it_at_once(api: Api) -> None:
    ana = await api.user("ana")
    phone = await login(api, ana, "phone")
    phone_id = next(entry["id"] for entry in await sessions(api, phone) if entry["current"])
    assert (await api.client.get("/api/v1/users/me", headers=phone)).status_code == 200
    assert (await api.client.delete(f"{SESSIONS}/{phone_id}", headers=ana.headers)).status_code == 204
    problem(await api.client.get("/api/v1/users/me", headers=phone), 401, "not_authenticated")
    assert [entry["current"] for entry in await sessions(api, ana.headers)] == [True]
    problem(await api.client.delete(f"{SESSIONS}/{phone_id}", headers=ana.headers), 404)


async def test_nobody_revokes_someone_elses_session(api: Api) -> None:
    ana = await api.user("ana")
    bea = await api.user("bea")
    anas = (await sessions(api, ana.headers))[0]["id"]
    problem(await api.client.delete(f"{SESSIONS}/{anas}", headers=bea.headers), 404)
    problem(await api.client.delete(f"{SESSIONS}/not-an-id", headers=bea.headers), 404)
    assert (await api.client.get("/api/v1/users/me", headers=ana.headers)).status_code == 200


async def test_revoking_the_current_session_logs_out(api: Api) -> None:
    ana = await api.user("ana")
    current = (await sessions(api, ana.headers))[0]["id"]
    assert (await api.client.delete(f"{SESSIONS}/{current}", headers=ana.headers)).status_code == 204
    problem(await api.client.get(SESSIONS, headers=ana.headers), 401)


async def test_a_password_change_ends_every_other_session(api: Api) -> None:
    ana = await api.user("ana")
    other = await login(api, ana, "other")
    changed = await api.client.patch(
        "/api/v1/users/me",
        json={"password": "another fine passphrase", "current_password": PASSWORD},
        headers=ana.headers,
    )
    assert changed.status_code == 200, changed.text
    problem(await api.client.get("/api/v1/users/me", headers=other), 401)
    assert [entry["current"] for entry in await sessions(api, ana.headers)] == [True]


async def test_a_username_change_keeps_the_other_sessions(api: Api) -> None:
    ana = await api.user("ana")
    other = await login(api, ana, "other")
    changed = await api.client.patch("/api/v1/users/me", json={"username": "ana-two"}, headers=ana.headers)
    assert changed.status_code == 200, changed.text
    assert (await api.client.get("/api/v1/users/me", headers=other)).status_code == 200


async def test_a_password_set_by_an_administrator_ends_all_sessions(api: Api) -> None:
    root = await api.user("root", superuser=True)
    ana = await api.user("ana")
    response = await api.client.patch(
        f"/api/v1/users/{ana.id}", json={"password": "another fine passphrase"}, headers=root.headers
    )
    assert response.status_code == 200, response.text
    problem(await api.client.get("/api/v1/users/me", headers=ana.headers), 401)
    assert (await api.client.get("/api/v1/users/me", headers=root.headers)).status_code == 200


async def test_expired_sessions_are_neither_listed_nor_accepted(api: Api) -> None:
    ana = await api.user("ana")
    old = await login(api, ana, "old")
    old_id = next(entry["id"] for entry in await sessions(api, old) if entry["current"])
    async with api.engine.begin() as connection:
        await connection.execute(
            update(AuthSession)
            .where(AuthSession.user_agent == "old")
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    problem(await api.client.get("/api/v1/users/me", headers=old), 401)
    assert old_id not in [entry["id"] for entry in await sessions(api, ana.headers)]
    problem(await api.client.delete(f"{SESSIONS}/{old_id}", headers=ana.headers), 404)
