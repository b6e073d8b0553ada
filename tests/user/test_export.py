"""GET /users/me/export: a person's data in one document, without secrets."""

from __future__ import annotations

from tests.conftest import Api, Team, problem


async def test_the_export_holds_what_we_keep_about_the_caller(api: Api, team: Team) -> None:
    await api.annotate(team.items[0], team.annotator)
    key = await api.client.post(
        "/api/v1/api-keys", json={"name": "script", "scopes": ["read"]}, headers=team.annotator.headers
    )
    response = await api.client.get("/api/v1/users/me/export", headers=team.annotator.headers)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["user"]["email"] == team.annotator.email
    assert [(m["project_name"], m["role"]) for m in data["memberships"]] == [("Debates", "annotator")]
    assert [(s["ip"], s["current"]) for s in data["sessions"]] == [("127.0.0.1", True)]
    assert [k["prefix"] for k in data["api_keys"]] == [key.json()["prefix"]]
    assert data["linked_providers"] == []
    assert data["annotations_written"] == 1
    assert data["audit_events"] >= 3  # registration, login, the annotation, the key
    for secret in (key.json()["key"], team.annotator.token, "argon2"):
        assert secret not in response.text


async def test_the_export_needs_credentials(api: Api) -> None:
    problem(await api.client.get("/api/v1/users/me/export"), 401)
