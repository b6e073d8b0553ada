"""API keys: shown once and stored hashed, scoped, expiring, IP-restricted, revocable, never beyond their user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text, update

from annotation_platform.main import create_app
from annotation_platform.models import ApiKey
from tests.conftest import Actor, Api, Team, make_settings, problem, serve

KEYS = "/api/v1/api-keys"


async def create_key(api: Api, actor: Actor, **fields: Any) -> dict[str, Any]:
    response = await api.client.post(KEYS, json={"name": "script", "scopes": ["read"], **fields}, headers=actor.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def key_headers(key: dict[str, Any]) -> dict[str, str]:
    return {"X-API-Key": key["key"]}


async def test_the_secret_is_shown_once_and_stored_hashed(api: Api) -> None:
    ana = await api.user("ana")
    response = await api.client.post(
        KEYS, json={"name": " nightly ", "scopes": ["read", "write", "read"]}, headers=ana.headers
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"] == f"{KEYS}/{created['id']}"
    assert created["name"] == "nightly"
    assert created["scopes"] == ["read", "write"]
    assert created["key"].startswith(created["prefix"] + "_")
    assert created["prefix"].startswith("apk_")
    assert (created["expires_at"], created["allowed_ips"], created["last_used_at"]) == (None, None, None)

    listed = (await api.client.get(KEYS, headers=ana.headers)).json()["items"]
    one = (await api.client.get(f"{KEYS}/{created['id']}", headers=ana.headers)).json()
    assert "key" not in listed[0]
    assert "key" not in one
    async with api.engine.connect() as connection:
        row = (await connection.execute(text("SELECT * FROM api_keys"))).mappings().one()
    assert created["key"] not in {str(value) for value in row.values()}
    assert len(row["secret_hash"]) == 64


async def test_a_key_authenticates_and_records_its_last_use(api: Api) -> None:
    ana = await api.user("ana")
    key = await create_key(api, ana)
    me = await api.client.get("/api/v1/users/me", headers=key_headers(key))
    assert me.status_code == 200, me.text
    assert me.json()["id"] == ana.id
    one = (await api.client.get(f"{KEYS}/{key['id']}", headers=ana.headers)).json()
    assert one["last_used_at"] is not None
    problem(await api.client.get("/api/v1/users/me", headers={"X-API-Key": key["key"] + "x"}), 401)
    problem(await api.client.get("/api/v1/users/me", headers={"X-API-Key": ""}), 401)


async def test_a_read_key_only_reads_and_a_write_key_writes(api: Api, team: Team) -> None:
    reader = await create_key(api, team.manager, scopes=["read"])
    writer = await create_key(api, team.manager, scopes=["write"])
    project_url = f"/api/v1/projects/{team.project['id']}"
    assert (await api.client.get(project_url, headers=key_headers(reader))).status_code == 200
    problem(
        await api.client.patch(project_url, json={"description": "x"}, headers=key_headers(reader)),
        403,
        "insufficient_scope",
    )
    changed = await api.client.patch(project_url, json={"description": "x"}, headers=key_headers(writer))
    assert changed.status_code == 200, changed.text


async def test_a_key_never_grants_more_than_its_user_has(api: Api, team: Team) -> None:
    annotator_key = await create_key(api, team.annotator, scopes=["read", "write"])
    problem(
        await api.client.patch(
            f"/api/v1/projects/{team.project['id']}", json={"description": "x"}, headers=key_headers(annotator_key)
        ),
        403,
        "forbidden",
    )
    problem(await api.client.get(f"/api/v1/projects/{team.project['id']}", headers={"X-API-Key": "nope"}), 401)
    stranger_key = await create_key(api, team.stranger, scopes=["read", "write"])
    problem(await api.client.get(f"/api/v1/projects/{team.project['id']}", headers=key_headers(stranger_key)), 404)
    body = problem(
        await api.client.post(KEYS, json={"name": "k", "scopes": ["admin"]}, headers=team.owner.headers),
        422,
        "scope_not_held",
    )
    assert body["errors"][0]["loc"] == ["body", "scopes"]


async def test_a_superusers_key_needs_admin_for_superuser_powers(api: Api, team: Team) -> None:
    root = await api.user("root", superuser=True)
    plain = await create_key(api, root, scopes=["read", "write"])
    admin = await create_key(api, root, scopes=["read", "admin"])
    problem(await api.client.get("/api/v1/users", headers=key_headers(plain)), 403, "forbidden")
    problem(await api.client.get(f"/api/v1/projects/{team.project['id']}", headers=key_headers(plain)), 404)
    assert (await api.client.get("/api/v1/projects", headers=key_headers(plain))).json()["items"] == []
    assert (await api.client.get("/api/v1/users", headers=key_headers(admin))).status_code == 200
    assert (
        await api.client.get(f"/api/v1/projects/{team.project['id']}", headers=key_headers(admin))
    ).status_code == 200
    # A read/admin key still cannot write.
    problem(
        await api.client.patch(
            f"/api/v1/users/{team.viewer.id}", json={"is_verified": True}, headers=key_headers(admin)
        ),
        403,
        "insufficient_scope",
    )
    # The withheld powers are per request: the same superuser's login still has them.
    assert (await api.client.get("/api/v1/users", headers=root.headers)).status_code == 200


async def test_expired_and_revoked_keys_answer_401_at_once(api: Api) -> None:
    ana = await api.user("ana")
    soon = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    expiring = await create_key(api, ana, expires_at=soon)
    assert (await api.client.get("/api/v1/users/me", headers=key_headers(expiring))).status_code == 200
    async with api.engine.begin() as connection:
        await connection.execute(update(ApiKey).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    problem(await api.client.get("/api/v1/users/me", headers=key_headers(expiring)), 401, "not_authenticated")

    revoked = await create_key(api, ana)
    assert (await api.client.get("/api/v1/users/me", headers=key_headers(revoked))).status_code == 200
    assert (await api.client.delete(f"{KEYS}/{revoked['id']}", headers=ana.headers)).status_code == 204
    problem(await api.client.get("/api/v1/users/me", headers=key_headers(revoked)), 401, "not_authenticated")
    problem(await api.client.get(f"{KEYS}/{revoked['id']}", headers=ana.headers), 404)

    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    body = problem(
        await api.client.post(KEYS, json={"name": "k", "scopes": ["read"], "expires_at": past}, headers=ana.headers),
        422,
        "expiry_in_the_past",
    )
    assert body["errors"][0]["loc"] == ["body", "expires_at"]


async def test_allowed_ip_ranges(api: Api) -> None:
    ana = await api.user("ana")
    elsewhere = await create_key(api, ana, allowed_ips=["10.0.0.0/8", "2001:db8::/32"])
    here = await create_key(api, ana, allowed_ips=["127.0.0.1"])
    assert here["allowed_ips"] == ["127.0.0.1/32"]
    problem(await api.client.get("/api/v1/users/me", headers=key_headers(elsewhere)), 403, "ip_not_allowed")
    # X-Forwarded-For from a peer that is not a trusted proxy is ignored.
    spoofed = {**key_headers(elsewhere), "X-Forwarded-For": "10.1.2.3"}
    problem(await api.client.get("/api/v1/users/me", headers=spoofed), 403, "ip_not_allowed")
    assert (await api.client.get("/api/v1/users/me", headers=key_headers(here))).status_code == 200
    body = problem(
        await api.client.post(
            KEYS, json={"name": "k", "scopes": ["read"], "allowed_ips": ["10.0.0.300/8"]}, headers=ana.headers
        ),
        422,
        "validation_failed",
    )
    assert body["errors"][0]["loc"] == ["body", "allowed_ips", 0]


async def test_behind_a_trusted_proxy_the_forwarded_address_counts(api: Api, database_url: str, tmp_path: Path) -> None:
    ana = await api.user("ana")
    key = await create_key(api, ana, allowed_ips=["10.0.0.0/8"])
    proxied = create_app(make_settings(database_url, tmp_path, trusted_proxies="127.0.0.0/8, 192.0.2.1"))
    async with serve(proxied) as http:
        through_proxy = {**key_headers(key), "X-Forwarded-For": "10.1.2.3, 192.0.2.1"}
        assert (await http.get("/api/v1/users/me", headers=through_proxy)).status_code == 200
        # The client's own claim (left of the real client) is not believed.
        forged = {**key_headers(key), "X-Forwarded-For": "10.9.9.9, 203.0.113.5"}
        problem(await http.get("/api/v1/users/me", headers=forged), 403, "ip_not_allowed")


async def test_keys_are_private_and_cannot_make_keys(api: Api) -> None:
    ana = await api.user("ana")
    bea = await api.user("bea")
    key = await create_key(api, ana, scopes=["read", "write"])
    problem(await api.client.get(f"{KEYS}/{key['id']}", headers=bea.headers), 404)
    problem(await api.client.delete(f"{KEYS}/{key['id']}", headers=bea.headers), 404)
    assert (await api.client.get(KEYS, headers=bea.headers)).json()["items"] == []
    problem(
        await api.client.post(KEYS, json={"name": "k", "scopes": ["read"]}, headers=key_headers(key)),
        403,
        "login_session_required",
    )
    problem(await api.client.post("/api/v1/auth/jwt/logout", headers=key_headers(key)), 400)
    assert (await api.client.get("/api/v1/users/me", headers=key_headers(key))).status_code == 200


async def test_the_openapi_document_offers_both_credentials(client: httpx.AsyncClient) -> None:
    schemes = (await client.get("/openapi.json")).json()["components"]["securitySchemes"]
    assert schemes["apiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["apiKey"]["description"],
    }
    assert schemes["bearer"]["type"] == "oauth2"
