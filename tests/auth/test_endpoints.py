"""Registration, login, logout and bearer-token authentication."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.config import Settings
from annotation_platform.core.types import utcnow
from annotation_platform.models import AuthSession, User
from tests.conftest import PASSWORD, Api, problem

REGISTER = "/api/v1/auth/register"
LOGIN = "/api/v1/auth/jwt/login"
LOGOUT = "/api/v1/auth/jwt/logout"
ME = "/api/v1/users/me"


async def user_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(User))).scalar_one())


async def register(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    return await client.post(REGISTER, json={"password": PASSWORD, **body})


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post(LOGIN, data={"username": email, "password": password})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- registration ---------------------------------------------------------------------------------------------


async def test_register_creates_an_account_with_a_lower_case_email(client: httpx.AsyncClient) -> None:
    response = await register(client, email="Ana.Souza@Example.ORG")

    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == "/api/v1/users/me"
    assert body["email"] == "ana.souza@example.org"
    assert body["username"] == "ana.souza"
    assert (body["is_active"], body["is_verified"], body["is_superuser"]) == (True, False, False)
    assert "created_at" in body
    assert not {"password", "hashed_password"} & body.keys()
    # The email is matched case-insensitively at login, however the user types it.
    for typed in ("ana.souza@example.org", "ANA.SOUZA@example.org"):
        logged_in = await login(client, typed)
        assert logged_in.status_code == 200, logged_in.text
    me = await client.get(response.headers["location"], headers=bearer(logged_in.json()["access_token"]))
    assert me.json() == body


async def test_register_derives_a_free_username_from_the_email(client: httpx.AsyncClient) -> None:
    first = await register(client, email="ana@example.org")
    second = await register(client, email="ana@example.net")
    explicit = await register(client, email="someone@example.org", username="ana-3")
    third = await register(client, email="ANA@example.com")

    assert [r.status_code for r in (first, second, explicit, third)] == [201, 201, 201, 201]
    assert first.json()["username"] == "ana"
    assert second.json()["username"] == "ana-2"
    assert explicit.json()["username"] == "ana-3"
    assert third.json()["username"] == "ana-4"


async def test_register_keeps_an_explicit_username_lower_cased(client: httpx.AsyncClient) -> None:
    response = await register(client, email="ana@example.org", username="Curator_1")

    assert response.status_code == 201, response.text
    assert response.json()["username"] == "curator_1"


@pytest.mark.parametrize("email", ["ana@example.org", "ANA@Example.Org"])
async def test_register_refuses_an_email_already_registered(
    client: httpx.AsyncClient, engine: AsyncEngine, email: str
) -> None:
    assert (await register(client, email="ana@example.org")).status_code == 201

    problem(await register(client, email=email, password="another fine passphrase"), 409, "email_taken")
    assert await user_count(engine) == 1
    # The first account keeps its password.
    assert (await login(client, "ana@example.org")).status_code == 200
    problem(await login(client, "ana@example.org", "another fine passphrase"), 400, "invalid_credentials")


async def test_register_refuses_a_username_already_taken(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    assert (await register(client, email="ana@example.org", username="ana")).status_code == 201

    problem(await register(client, email="bea@example.org", username="ANA"), 409, "username_taken")
    assert await user_count(engine) == 1


@pytest.mark.parametrize(
    "password",
    [
        pytest.param("short-pw", id="too-short"),
        pytest.param("anastasia-likes-tea", id="contains-email-local-part"),
        pytest.param("password123", id="common"),
        pytest.param("Password123", id="common-other-case"),
    ],
)
async def test_register_enforces_the_password_policy(
    client: httpx.AsyncClient, engine: AsyncEngine, password: str
) -> None:
    response = await register(client, email="anastasia@example.org", password=password)

    body = problem(response, 422, "invalid_password")
    assert body["errors"][0]["loc"] == ["body", "password"]
    assert password not in response.text
    assert await user_count(engine) == 0


async def test_register_refuses_unknown_fields(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    response = await register(client, email="mallory@example.org", is_superuser=True)

    body = problem(response, 422, "validation_failed")
    assert ["body", "is_superuser"] in [error["loc"] for error in body["errors"]]
    assert await user_count(engine) == 0


async def test_register_refuses_malformed_json(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post(
        REGISTER, content=b'{"email": "ana@example.org", "password": ', headers={"Content-Type": "application/json"}
    )

    problem(response, 400, "malformed_json")
    assert await user_count(engine) == 0


async def test_register_refuses_a_body_that_is_not_json(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    response = await client.post(
        REGISTER,
        content=f'{{"email": "ana@example.org", "password": "{PASSWORD}"}}'.encode(),
        headers={"Content-Type": "text/plain"},
    )

    problem(response, 415, "unsupported_media_type")
    assert await user_count(engine) == 0


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"email": "a" * 5000 + "@example.org", "password": PASSWORD}, id="huge-email"),
        pytest.param({"email": "ana@" + "b" * 5000 + ".org", "password": PASSWORD}, id="huge-domain"),
        pytest.param({"email": "ana@example.org", "password": "Xy7-" * 25_000}, id="huge-password"),
        pytest.param({"email": "ana@example.org", "password": PASSWORD, "username": "u" * 5000}, id="huge-username"),
        pytest.param({"email": "not an email", "password": PASSWORD}, id="not-an-email"),
        pytest.param({"email": "ana@example.org", "password": PASSWORD, "username": "no spaces"}, id="bad-username"),
        pytest.param({"email": "ana@example.org", "password": 1234567890123}, id="password-not-a-string"),
        pytest.param({"email": "ana@example.org"}, id="password-missing"),
        pytest.param([], id="not-an-object"),
    ],
)
async def test_register_refuses_bad_input_with_422(client: httpx.AsyncClient, engine: AsyncEngine, body: Any) -> None:
    response = await client.post(REGISTER, json=body)

    assert response.status_code == 422, response.text
    problem(response, 422)
    assert len(response.content) < 10_000, "the problem document must not echo huge input back"
    assert await user_count(engine) == 0


# --- login ----------------------------------------------------------------------------------------------------


async def test_login_returns_a_bearer_token(client: httpx.AsyncClient, settings: Settings) -> None:
    created = await register(client, email="ana@example.org")

    response = await login(client, "ana@example.org")

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_lifetime_seconds
    assert isinstance(body["access_token"], str)
    assert len(body["access_token"]) >= 32
    me = await client.get(ME, headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json()["id"] == created.json()["id"]


async def test_each_login_gets_its_own_token(client: httpx.AsyncClient) -> None:
    await register(client, email="ana@example.org")

    first = (await login(client, "ana@example.org")).json()["access_token"]
    second = (await login(client, "ana@example.org")).json()["access_token"]

    assert first != second


async def test_login_does_not_tell_a_wrong_password_from_an_unknown_email(client: httpx.AsyncClient) -> None:
    await register(client, email="ana@example.org")

    wrong_password = problem(await login(client, "ana@example.org", "not the passphrase"), 400, "invalid_credentials")
    unknown_email = problem(await login(client, "nobody@example.org"), 400, "invalid_credentials")

    for body in (wrong_password, unknown_email):
        del body["request_id"]
    assert wrong_password == unknown_email


async def test_login_refuses_a_disabled_account(api: Api) -> None:
    admin = await api.user("admin", superuser=True)
    ana = await api.user("ana")

    disabled = await api.client.patch(f"/api/v1/users/{ana.id}", json={"is_active": False}, headers=admin.headers)
    assert disabled.status_code == 200, disabled.text

    problem(await login(api.client, ana.email), 400, "invalid_credentials")


async def test_login_refuses_a_json_body(client: httpx.AsyncClient) -> None:
    await register(client, email="ana@example.org")

    response = await client.post(LOGIN, json={"username": "ana@example.org", "password": PASSWORD})

    problem(response, 415, "unsupported_media_type")


async def test_login_without_a_password_is_a_validation_error(client: httpx.AsyncClient) -> None:
    problem(await client.post(LOGIN, data={"username": "ana@example.org"}), 422, "validation_failed")


# --- authentication -------------------------------------------------------------------------------------------


async def test_no_token_answers_401_with_a_bearer_challenge(client: httpx.AsyncClient) -> None:
    response = await client.get(ME)

    problem(response, 401, "not_authenticated")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_an_invalid_token_answers_401(api: Api) -> None:
    ana = await api.user("ana")
    invalid = [
        "Bearer garbage",
        "Bearer apt_" + "x" * 43,
        "Bearer " + "y" * 5000,
        f"Bearer {ana.token}x",
        f"Bearer {ana.token[:-1]}",
        # The email and password sent as Basic credentials are not a token.
        "Basic YW5hQGV4YW1wbGUub3JnOmEgcGVyZmVjdGx5IGZpbmUgcGFzc3BocmFzZQ==",
        "Bearer",
        ana.token,
    ]
    for authorization in invalid:
        response = await api.client.get(ME, headers={"Authorization": authorization})

        problem(response, 401, "not_authenticated")
        assert response.headers["www-authenticate"] == "Bearer"
    assert (await api.client.get(ME, headers=ana.headers)).status_code == 200


async def test_logout_ends_only_this_session(api: Api) -> None:
    ana = await api.user("ana")
    other_session = (await login(api.client, ana.email)).json()["access_token"]

    response = await api.client.post(LOGOUT, headers=ana.headers)

    assert response.status_code == 204
    assert response.content == b""
    problem(await api.client.get(ME, headers=ana.headers), 401, "not_authenticated")
    problem(await api.client.post(LOGOUT, headers=ana.headers), 401, "not_authenticated")
    assert (await api.client.get(ME, headers=bearer(other_session))).status_code == 200


async def test_logout_needs_a_token(client: httpx.AsyncClient) -> None:
    problem(await client.post(LOGOUT), 401, "not_authenticated")


async def test_an_expired_session_answers_401(api: Api) -> None:
    ana = await api.user("ana")
    assert (await api.client.get(ME, headers=ana.headers)).status_code == 200

    async with api.engine.begin() as connection:
        await connection.execute(
            update(AuthSession)
            .where(AuthSession.user_id == uuid.UUID(ana.id))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    problem(await api.client.get(ME, headers=ana.headers), 401, "not_authenticated")
    # Logging in again works and gives a live session.
    fresh = (await login(api.client, ana.email)).json()["access_token"]
    assert (await api.client.get(ME, headers=bearer(fresh))).status_code == 200


async def test_a_deactivated_users_token_stops_working(api: Api) -> None:
    admin = await api.user("admin", superuser=True)
    ana = await api.user("ana")
    assert (await api.client.get(ME, headers=ana.headers)).status_code == 200

    deactivated = await api.client.patch(f"/api/v1/users/{ana.id}", json={"is_active": False}, headers=admin.headers)
    assert deactivated.status_code == 200, deactivated.text

    problem(await api.client.get(ME, headers=ana.headers), 401, "not_authenticated")
    problem(await api.client.get("/api/v1/projects", headers=ana.headers), 401, "not_authenticated")
