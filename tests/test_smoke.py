from __future__ import annotations

from tests.conftest import Api, problem


async def test_register_login_create_project(api: Api) -> None:
    ana = await api.user("ana")
    project = await api.project(ana, name="Mine")
    assert project["my_role"] == "owner"
    response = await api.client.get("/api/v1/projects", headers=ana.headers)
    assert [p["id"] for p in response.json()["items"]] == [project["id"]]
    problem(await api.client.get("/api/v1/projects"), 401, "not_authenticated")
