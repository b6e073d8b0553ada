"""A burst of denied requests (403/404) by one user is recorded once as a security event."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from annotation_platform.main import create_app
from annotation_platform.models import AuditEvent
from tests.conftest import PASSWORD, make_settings, serve


async def account(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    email = f"{name}@example.org"
    assert (await http.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})).status_code == 201
    login = await http.post("/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
    return {"Authorization": f"Bearer {login.json()['access_token']}"}


async def test_a_burst_of_denied_requests_is_recorded_once(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    app = create_app(make_settings(database_url, tmp_path, denied_burst_threshold=3, denied_burst_window_seconds=600))
    async with serve(app) as http:
        owner = await account(http, "owner")
        prober = await account(http, "prober")
        project = (await http.post("/api/v1/projects", json={"name": "P"}, headers=owner)).json()
        for _ in range(2):
            assert (await http.get(f"/api/v1/projects/{project['id']}", headers=prober)).status_code == 404
        # Anonymous 401s and the owner's own 404s do not count towards the prober's burst.
        assert (await http.get(f"/api/v1/projects/{uuid.uuid4()}", headers=owner)).status_code == 404
        assert (await http.get(f"/api/v1/projects/{project['id']}")).status_code == 401
        me = (await http.get("/api/v1/users/me", headers=prober)).json()
        for _ in range(3):
            await http.get(f"/api/v1/containers/{uuid.uuid4()}", headers=prober)
        root_events = await _events(app)
    bursts = [event for event in root_events if event.action == "access.denied_burst"]
    assert len(bursts) == 1
    assert (str(bursts[0].actor_user_id), bursts[0].resource_id) == (me["id"], me["id"])
    assert bursts[0].after == {"denied": 3, "window_seconds": 600}


async def _events(app: Any) -> list[AuditEvent]:
    async with AsyncSession(app.state.engine) as session:
        return list((await session.execute(select(AuditEvent))).scalars())
