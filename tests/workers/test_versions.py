"""A real worker process takes a version and restores it into a new project (the embedded default: SQLite and the
filesystem broker; also PostgreSQL and Redis when reachable)."""

from __future__ import annotations

from tests.data_import.helpers import ROOM, chat_csv, upload
from tests.workers.test_worker import Stack, _team, stack  # noqa: F401 - `stack` is a fixture


async def test_a_worker_takes_a_version_and_restores_it(stack: Stack) -> None:  # noqa: F811
    stack.start_worker()
    team = await _team(stack)
    response = await upload(stack.http, team.container, team.owner, chat_csv(ROOM), annotator=team.annotator.username)
    imported = await stack.wait_for(response.json()["id"], team.owner, statuses=("succeeded", "failed"))
    assert imported["status"] == "succeeded", imported
    versions = f"/api/v1/projects/{team.project['id']}/versions"

    response = await stack.http.post(versions, json={"tag": "v1", "message": "as imported"}, headers=team.owner.headers)
    assert response.status_code == 202, response.text
    job = await stack.wait_for(response.json()["id"], team.owner, statuses=("succeeded", "failed"))
    assert job["status"] == "succeeded", job
    version = (await stack.http.get(f"{versions}/{job['result']['version_id']}", headers=team.owner.headers)).json()
    assert version["counts"] == {"containers": 1, "items": 4, "annotations": 3}

    response = await stack.http.post(f"{versions}/{version['id']}/restore", headers=team.owner.headers)
    assert response.status_code == 202, response.text
    job = await stack.wait_for(response.json()["id"], team.owner, statuses=("succeeded", "failed"))
    assert job["status"] == "succeeded", job
    assert job["result"]["items"] == 4
    copy = await stack.http.get(f"/api/v1/projects/{job['result']['project_id']}", headers=team.owner.headers)
    assert copy.json()["my_role"] == "owner"
