"""The permission matrix of docs/permissions.md, checked route by route.

The expected statuses are read from the table in the docs, so the documentation and the behaviour cannot drift
apart. Every route the application serves must have a row there and a request builder here: a new route
without both fails `test_every_route_has_a_row_and_a_request`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import update

from annotation_platform.data_export.service import run_export
from annotation_platform.main import create_app
from annotation_platform.models import Job, WebhookDelivery
from annotation_platform.version.service import run_snapshot
from tests.conftest import PASSWORD, Actor, Api, Team, make_settings
from tests.data_import.helpers import ROOM, chat_csv

PERMISSIONS_DOC = Path(__file__).resolve().parents[1] / "docs" / "permissions.md"
CALLERS = ("anonymous", "stranger", "viewer", "annotator", "reviewer", "manager", "owner", "superuser")
ROW = re.compile(r"^\| `(?P<method>[A-Z]+) (?P<path>[^`]+)` \|(?P<statuses>.*)\|\s*$")

RouteKey = tuple[str, str]


def documented_matrix() -> dict[RouteKey, dict[str, int]]:
    """{(method, path): {caller: status}} from the matrix table in docs/permissions.md."""
    matrix: dict[RouteKey, dict[str, int]] = {}
    for line in PERMISSIONS_DOC.read_text("utf-8").splitlines():
        match = ROW.match(line)
        if match is None:
            continue
        statuses = [int(cell) for cell in match["statuses"].split("|")]
        assert len(statuses) == len(CALLERS), line
        key = (match["method"], match["path"])
        assert key not in matrix, f"two rows for {key}"
        matrix[key] = dict(zip(CALLERS, statuses, strict=True))
    return matrix


def served_routes(app: Any) -> set[RouteKey]:
    """Every (method, path) the application answers, through included routers (HEAD mirrors GET)."""
    routes = set()
    for context in iter_route_contexts(app.routes):
        for method in context.methods or ():
            if method != "HEAD":
                routes.add((method, str(context.path)))
    return routes


@dataclass
class Call:
    """One request a builder prepared for a caller."""

    url: str
    json: Any = None
    data: dict[str, str] | None = None
    files: dict[str, Any] | None = None
    headers: dict[str, str] | None = None  # replaces the caller's own credentials when set


@dataclass
class World:
    api: Api
    app: Any
    team: Team
    superuser: Actor
    actors: dict[str, Actor] = field(default_factory=dict)

    def actor(self, caller: str) -> Actor | None:
        return self.actors.get(caller)

    @property
    def project_id(self) -> str:
        return str(self.team.project["id"])

    @property
    def container_id(self) -> str:
        return str(self.team.container["id"])

    @property
    def item_id(self) -> str:
        return str(self.team.items[0]["id"])

    async def fresh_project(self) -> str:
        """A project owned by the team's owner, with the same members in the same roles."""
        project = await self.api.project(self.team.owner, name=f"p-{uuid.uuid4().hex[:6]}")
        for role in ("manager", "reviewer", "annotator", "viewer"):
            await self.api.add_member(project, self.team.owner, getattr(self.team, role), role)
        return str(project["id"])

    async def fresh_member(self) -> str:
        newcomer = await self.api.user()
        await self.api.add_member(self.team.project, self.team.owner, newcomer, "viewer")
        return newcomer.id

    async def fresh_item(self) -> str:
        response = await self.api.client.post(
            f"/api/v1/containers/{self.container_id}/items",
            json={"external_id": f"x-{uuid.uuid4().hex}", "content": "a fresh turn"},
            headers=self.team.owner.headers,
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def owners_annotation(self) -> str:
        return str((await self.api.annotate(self.team.items[0], self.team.owner))["id"])

    async def owners_edited_annotation(self) -> str:
        """The owner's annotation at version 2, so that it has an earlier version to revert to."""
        annotation_id = await self.owners_annotation()
        response = await self.api.client.patch(
            f"/api/v1/annotations/{annotation_id}", json={"data": {"thread_id": "2"}}, headers=self.team.owner.headers
        )
        assert response.status_code == 200, response.text
        return annotation_id

    async def owners_session(self) -> str:
        owner = self.team.owner
        login = await self.api.client.post(
            "/api/v1/auth/jwt/login", data={"username": owner.email, "password": PASSWORD}
        )
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        listed = await self.api.client.get("/api/v1/users/me/sessions", headers=headers)
        return str(next(entry["id"] for entry in listed.json()["items"] if entry["current"]))

    async def owners_key(self) -> str:
        response = await self.api.client.post(
            "/api/v1/api-keys", json={"name": "owner's", "scopes": ["read"]}, headers=self.team.owner.headers
        )
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def owners_export(self, *, finished: bool = False) -> str:
        response = await self.api.client.post(
            f"/api/v1/projects/{self.project_id}/exports", json={"format": "jsonl"}, headers=self.team.owner.headers
        )
        assert response.status_code == 202, response.text
        job_id = str(response.json()["id"])
        if finished:
            await run_export(self.app.state.sessionmaker, uuid.UUID(job_id), settings=self.app.state.settings)
        return job_id

    async def owners_webhook(self) -> str:
        response = await self.api.client.post(
            P.format(self.project_id) + "/webhooks",
            json={"url": "https://93.184.216.34/hook", "event_types": ["annotation.created"]},
            headers=self.team.owner.headers,
        )
        assert response.status_code == 201, response.text
        return P.format(self.project_id) + f"/webhooks/{response.json()['id']}"

    async def finished_delivery(self) -> str:
        """A webhook with one delivery that was sent (no worker runs here: the row is marked sent)."""
        webhook = await self.owners_webhook()
        webhook_id = webhook.rsplit("/", 1)[1]
        await self.owners_annotation()
        async with self.api.engine.begin() as connection:
            await connection.execute(
                update(WebhookDelivery)
                .where(WebhookDelivery.webhook_id == uuid.UUID(webhook_id))
                .values(status="succeeded", attempts=1)
            )
        listed = await self.api.client.get(f"{webhook}/deliveries", headers=self.team.owner.headers)
        return f"{webhook}/deliveries/{listed.json()['items'][0]['id']}"

    async def owners_version(self) -> str:
        """A finished version of the project, taken by the owner."""
        response = await self.api.client.post(
            P.format(self.project_id) + "/versions", json={"tag": unique("v")}, headers=self.team.owner.headers
        )
        assert response.status_code == 202, response.text
        await run_snapshot(
            self.app.state.sessionmaker, uuid.UUID(response.json()["id"]), settings=self.app.state.settings
        )
        job = await self.api.client.get(f"/api/v1/jobs/{response.json()['id']}", headers=self.team.owner.headers)
        return str(job.json()["result"]["version_id"])

    async def fail(self, job_id: str) -> None:
        async with self.api.engine.begin() as connection:
            await connection.execute(update(Job).where(Job.id == uuid.UUID(job_id)).values(status="failed"))


Builder = Callable[[World, str], Awaitable[Call]]


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def _fresh_login(world: World, caller: str) -> Call:
    actor = world.actor(caller)
    if actor is None:
        return Call("/api/v1/auth/jwt/logout")
    login = await world.api.client.post("/api/v1/auth/jwt/login", data={"username": actor.email, "password": PASSWORD})
    return Call("/api/v1/auth/jwt/logout", headers={"Authorization": f"Bearer {login.json()['access_token']}"})


async def _fresh_user(world: World, _caller: str) -> Call:
    return Call(f"/api/v1/users/{(await world.api.user()).id}")


async def _import(world: World, _caller: str) -> Call:
    # The annotations are credited to a member: a superuser who is not one must name somebody.
    return Call(
        f"/api/v1/containers/{world.container_id}/imports",
        data={"format": "csv", "annotator": world.team.owner.username},
        files={"file": ("room.csv", chat_csv(ROOM), "text/csv")},
    )


async def _job(world: World, _caller: str, suffix: str = "") -> Call:
    return Call(f"/api/v1/jobs/{await world.owners_export()}{suffix}")


async def _finished_job(world: World, _caller: str, suffix: str) -> Call:
    return Call(f"/api/v1/jobs/{await world.owners_export(finished=True)}{suffix}")


async def _failed_job(world: World, _caller: str) -> Call:
    job_id = await world.owners_export()
    await world.fail(job_id)
    return Call(f"/api/v1/jobs/{job_id}/retry")


async def _version(world: World, _caller: str, suffix: str = "") -> Call:
    version_id = await world.owners_version()
    query = f"?against={version_id}" if suffix == "/diff" else ""
    return Call(P.format(world.project_id) + f"/versions/{version_id}{suffix}{query}")


def plain(url: str) -> Builder:
    async def build(_world: World, _caller: str) -> Call:
        return Call(url)

    return build


def at(make_url: Callable[[World], str], **call: Any) -> Builder:
    async def build(world: World, _caller: str) -> Call:
        return Call(make_url(world), **call)

    return build


def fresh(make: Callable[[World], Awaitable[str]], make_url: Callable[[str], str], **call: Any) -> Builder:
    """A builder that makes a new resource for every caller (for deletes and other one-shot changes)."""

    async def build(world: World, _caller: str) -> Call:
        return Call(make_url(await make(world)), **call)

    return build


def with_body(make_url: Callable[[World], str], make_json: Callable[[World], Any]) -> Builder:
    async def build(world: World, _caller: str) -> Call:
        return Call(make_url(world), json=make_json(world))

    return build


async def _new_container(world: World) -> str:
    return str((await world.api.container(world.team.project, world.team.owner))["id"])


P = "/api/v1/projects/{}"
REQUESTS: dict[RouteKey, Builder] = {
    ("POST", "/api/v1/auth/register"): lambda _w, _c: _ready(
        Call("/api/v1/auth/register", json={"email": f"{unique('new')}@example.org", "password": PASSWORD})
    ),
    ("POST", "/api/v1/auth/jwt/login"): lambda w, _c: _ready(
        Call("/api/v1/auth/jwt/login", data={"username": w.team.viewer.email, "password": PASSWORD})
    ),
    ("POST", "/api/v1/auth/jwt/logout"): _fresh_login,
    ("POST", "/api/v1/auth/forgot-password"): at(lambda w: "/api/v1/auth/forgot-password", json={"email": "a@b.org"}),
    ("POST", "/api/v1/auth/reset-password"): at(
        lambda _w: "/api/v1/auth/reset-password", json={"token": "not.a.token", "password": PASSWORD}
    ),
    ("POST", "/api/v1/auth/request-verify-token"): at(
        lambda _w: "/api/v1/auth/request-verify-token", json={"email": "a@b.org"}
    ),
    ("POST", "/api/v1/auth/verify"): at(lambda _w: "/api/v1/auth/verify", json={"token": "not.a.token"}),
    ("GET", "/api/v1/auth/oauth/{provider}/authorize"): plain("/api/v1/auth/oauth/oidc/authorize"),
    ("GET", "/api/v1/auth/oauth/{provider}/callback"): plain("/api/v1/auth/oauth/oidc/callback?code=c&state=s"),
    ("GET", "/api/v1/users/me"): plain("/api/v1/users/me"),
    ("PATCH", "/api/v1/users/me"): lambda _w, _c: _ready(Call("/api/v1/users/me", json={"username": unique("u")})),
    ("GET", "/api/v1/users/me/export"): plain("/api/v1/users/me/export"),
    ("GET", "/api/v1/users/me/sessions"): plain("/api/v1/users/me/sessions"),
    ("DELETE", "/api/v1/users/me/sessions/{session_id}"): fresh(
        World.owners_session, lambda session_id: f"/api/v1/users/me/sessions/{session_id}"
    ),
    ("GET", "/api/v1/users"): plain("/api/v1/users"),
    ("GET", "/api/v1/users/{user_id}"): at(lambda w: f"/api/v1/users/{w.team.viewer.id}"),
    ("PATCH", "/api/v1/users/{user_id}"): at(lambda w: f"/api/v1/users/{w.team.viewer.id}", json={"is_verified": True}),
    ("DELETE", "/api/v1/users/{user_id}"): _fresh_user,
    ("GET", "/api/v1/api-keys"): plain("/api/v1/api-keys"),
    ("POST", "/api/v1/api-keys"): at(lambda _w: "/api/v1/api-keys", json={"name": "script", "scopes": ["read"]}),
    ("GET", "/api/v1/api-keys/{key_id}"): fresh(World.owners_key, lambda key_id: f"/api/v1/api-keys/{key_id}"),
    ("DELETE", "/api/v1/api-keys/{key_id}"): fresh(World.owners_key, lambda key_id: f"/api/v1/api-keys/{key_id}"),
    ("GET", "/api/v1/projects"): plain("/api/v1/projects"),
    ("POST", "/api/v1/projects"): at(lambda _w: "/api/v1/projects", json={"name": "Another"}),
    ("GET", "/api/v1/projects/{project_id}"): at(lambda w: P.format(w.project_id)),
    ("PATCH", "/api/v1/projects/{project_id}"): at(lambda w: P.format(w.project_id), json={"description": "new"}),
    ("DELETE", "/api/v1/projects/{project_id}"): fresh(World.fresh_project, P.format),
    ("GET", "/api/v1/projects/{project_id}/members"): at(lambda w: P.format(w.project_id) + "/members"),
    ("GET", "/api/v1/projects/{project_id}/members/{user_id}"): at(
        lambda w: P.format(w.project_id) + f"/members/{w.team.viewer.id}"
    ),
    ("PUT", "/api/v1/projects/{project_id}/members/{user_id}"): lambda w, _c: _put_member(w),
    ("DELETE", "/api/v1/projects/{project_id}/members/{user_id}"): lambda w, _c: _delete_member(w),
    ("POST", "/api/v1/projects/{project_id}/members/transfer-ownership"): lambda w, _c: _transfer(w),
    ("GET", "/api/v1/projects/{project_id}/containers"): at(lambda w: P.format(w.project_id) + "/containers"),
    ("POST", "/api/v1/projects/{project_id}/containers"): lambda w, _c: _ready(
        Call(P.format(w.project_id) + "/containers", json={"name": unique("room-")})
    ),
    ("GET", "/api/v1/containers/{container_id}"): at(lambda w: f"/api/v1/containers/{w.container_id}"),
    ("PATCH", "/api/v1/containers/{container_id}"): lambda w, _c: _ready(
        Call(f"/api/v1/containers/{w.container_id}", json={"name": unique("room-")})
    ),
    ("DELETE", "/api/v1/containers/{container_id}"): fresh(
        lambda w: _new_container(w), lambda container_id: f"/api/v1/containers/{container_id}"
    ),
    ("GET", "/api/v1/containers/{container_id}/items"): at(lambda w: f"/api/v1/containers/{w.container_id}/items"),
    ("POST", "/api/v1/containers/{container_id}/items"): lambda w, _c: _ready(
        Call(f"/api/v1/containers/{w.container_id}/items", json={"external_id": unique("x-"), "content": "hi"})
    ),
    ("POST", "/api/v1/containers/{container_id}/items/bulk"): lambda w, _c: _ready(
        Call(
            f"/api/v1/containers/{w.container_id}/items/bulk",
            json={"items": [{"external_id": unique("x-"), "content": "hi"}]},
        )
    ),
    ("PATCH", "/api/v1/containers/{container_id}/items/bulk"): with_body(
        lambda w: f"/api/v1/containers/{w.container_id}/items/bulk",
        lambda w: {"items": [{"id": w.item_id, "metadata": {"tag": "x"}}]},
    ),
    ("POST", "/api/v1/containers/{container_id}/items/bulk-delete"): lambda w, _c: _bulk_delete_item(w),
    ("GET", "/api/v1/items/{item_id}"): at(lambda w: f"/api/v1/items/{w.item_id}"),
    ("PATCH", "/api/v1/items/{item_id}"): at(lambda w: f"/api/v1/items/{w.item_id}", json={"content": "changed"}),
    ("DELETE", "/api/v1/items/{item_id}"): fresh(World.fresh_item, lambda item_id: f"/api/v1/items/{item_id}"),
    ("GET", "/api/v1/items/{item_id}/annotations"): at(lambda w: f"/api/v1/items/{w.item_id}/annotations"),
    ("POST", "/api/v1/items/{item_id}/annotations"): at(
        lambda w: f"/api/v1/items/{w.item_id}/annotations", json={"type": "thread", "data": {"thread_id": "1"}}
    ),
    ("GET", "/api/v1/containers/{container_id}/annotations"): at(
        lambda w: f"/api/v1/containers/{w.container_id}/annotations"
    ),
    ("POST", "/api/v1/containers/{container_id}/annotations/bulk"): with_body(
        lambda w: f"/api/v1/containers/{w.container_id}/annotations/bulk",
        lambda w: {"items": [{"item_id": w.item_id, "type": "thread", "data": {"thread_id": "1"}}]},
    ),
    ("PATCH", "/api/v1/containers/{container_id}/annotations/bulk"): lambda w, _c: _bulk_update_annotation(w),
    ("POST", "/api/v1/containers/{container_id}/annotations/bulk-delete"): lambda w, _c: _bulk_delete_annotation(w),
    ("GET", "/api/v1/annotations/{annotation_id}"): fresh(
        World.owners_annotation, lambda annotation_id: f"/api/v1/annotations/{annotation_id}"
    ),
    ("PATCH", "/api/v1/annotations/{annotation_id}"): fresh(
        World.owners_annotation,
        lambda annotation_id: f"/api/v1/annotations/{annotation_id}",
        json={"data": {"thread_id": "2"}},
    ),
    ("DELETE", "/api/v1/annotations/{annotation_id}"): fresh(
        World.owners_annotation, lambda annotation_id: f"/api/v1/annotations/{annotation_id}"
    ),
    ("GET", "/api/v1/annotations/{annotation_id}/history"): fresh(
        World.owners_annotation, lambda annotation_id: f"/api/v1/annotations/{annotation_id}/history"
    ),
    ("POST", "/api/v1/annotations/{annotation_id}/revert"): fresh(
        World.owners_edited_annotation,
        lambda annotation_id: f"/api/v1/annotations/{annotation_id}/revert",
        json={"version": 1},
    ),
    ("GET", "/api/v1/projects/{project_id}/changes"): at(lambda w: P.format(w.project_id) + "/changes"),
    ("GET", "/api/v1/containers/{container_id}/item-schemas"): at(
        lambda w: f"/api/v1/containers/{w.container_id}/item-schemas"
    ),
    ("POST", "/api/v1/containers/{container_id}/imports"): _import,
    ("POST", "/api/v1/projects/{project_id}/exports"): at(
        lambda w: P.format(w.project_id) + "/exports", json={"format": "jsonl"}
    ),
    ("GET", "/api/v1/containers/{container_id}/agreement"): at(
        lambda w: f"/api/v1/containers/{w.container_id}/agreement?type=thread"
    ),
    ("GET", "/api/v1/projects/{project_id}/agreement"): at(lambda w: P.format(w.project_id) + "/agreement?type=thread"),
    ("GET", "/api/v1/containers/{container_id}/disagreements"): at(
        lambda w: f"/api/v1/containers/{w.container_id}/disagreements?type=thread"
    ),
    ("GET", "/api/v1/containers/{container_id}/gold"): at(
        lambda w: f"/api/v1/containers/{w.container_id}/gold?type=thread"
    ),
    ("POST", "/api/v1/containers/{container_id}/gold"): fresh(
        _new_container,
        lambda container_id: f"/api/v1/containers/{container_id}/gold",
        json={"type": "thread", "source": "majority"},
    ),
    ("DELETE", "/api/v1/containers/{container_id}/gold"): fresh(
        _new_container, lambda container_id: f"/api/v1/containers/{container_id}/gold?type=thread"
    ),
    ("GET", "/api/v1/containers/{container_id}/gold/open"): at(
        lambda w: f"/api/v1/containers/{w.container_id}/gold/open?type=thread"
    ),
    ("POST", "/api/v1/projects/{project_id}/versions"): lambda w, _c: _ready(
        Call(P.format(w.project_id) + "/versions", json={"tag": unique("v")})
    ),
    ("GET", "/api/v1/projects/{project_id}/versions"): at(lambda w: P.format(w.project_id) + "/versions"),
    ("GET", "/api/v1/projects/{project_id}/versions/{version_id}"): _version,
    ("GET", "/api/v1/projects/{project_id}/versions/{version_id}/diff"): lambda w, c: _version(w, c, "/diff"),
    ("POST", "/api/v1/projects/{project_id}/versions/{version_id}/restore"): lambda w, c: _version(w, c, "/restore"),
    ("GET", "/api/v1/jobs"): plain("/api/v1/jobs"),
    ("GET", "/api/v1/jobs/{job_id}"): _job,
    ("GET", "/api/v1/jobs/{job_id}/errors"): lambda w, c: _job(w, c, "/errors"),
    ("GET", "/api/v1/jobs/{job_id}/events"): lambda w, c: _finished_job(w, c, "/events"),
    ("POST", "/api/v1/jobs/{job_id}/cancel"): lambda w, c: _job(w, c, "/cancel"),
    ("POST", "/api/v1/jobs/{job_id}/retry"): _failed_job,
    ("GET", "/api/v1/jobs/{job_id}/download"): lambda w, c: _finished_job(w, c, "/download"),
    ("GET", "/api/v1/audit-events"): at(lambda w: f"/api/v1/audit-events?project_id={w.project_id}"),
    ("GET", "/api/v1/projects/{project_id}/webhooks"): at(lambda w: P.format(w.project_id) + "/webhooks"),
    ("POST", "/api/v1/projects/{project_id}/webhooks"): at(
        lambda w: P.format(w.project_id) + "/webhooks",
        json={"url": "https://93.184.216.34/hook", "event_types": ["job.finished"]},
    ),
    ("GET", "/api/v1/projects/{project_id}/webhooks/{webhook_id}"): fresh(
        World.owners_webhook, lambda webhook: webhook
    ),
    ("PATCH", "/api/v1/projects/{project_id}/webhooks/{webhook_id}"): fresh(
        World.owners_webhook, lambda webhook: webhook, json={"description": "changed"}
    ),
    ("DELETE", "/api/v1/projects/{project_id}/webhooks/{webhook_id}"): fresh(
        World.owners_webhook, lambda webhook: webhook
    ),
    ("POST", "/api/v1/projects/{project_id}/webhooks/{webhook_id}/rotate-secret"): fresh(
        World.owners_webhook, lambda webhook: f"{webhook}/rotate-secret"
    ),
    ("GET", "/api/v1/projects/{project_id}/webhooks/{webhook_id}/deliveries"): fresh(
        World.owners_webhook, lambda webhook: f"{webhook}/deliveries"
    ),
    ("POST", "/api/v1/projects/{project_id}/webhooks/{webhook_id}/deliveries/{delivery_id}/redeliver"): fresh(
        World.finished_delivery, lambda delivery: f"{delivery}/redeliver"
    ),
    ("GET", "/api/v1/admin/backups"): plain("/api/v1/admin/backups"),
    ("POST", "/api/v1/admin/backups"): plain("/api/v1/admin/backups"),
    ("GET", "/health/live"): plain("/health/live"),
    ("GET", "/health/ready"): plain("/health/ready"),
    ("GET", "/metrics"): plain("/metrics"),
    ("GET", "/openapi.json"): plain("/openapi.json"),
    ("GET", "/docs"): plain("/docs"),
    ("GET", "/docs/oauth2-redirect"): plain("/docs/oauth2-redirect"),
    ("GET", "/redoc"): plain("/redoc"),
    ("GET", "/errors"): plain("/errors"),
}


async def _ready(call: Call) -> Call:
    return call


async def _bulk_delete_item(world: World) -> Call:
    item_id = await world.fresh_item()
    return Call(f"/api/v1/containers/{world.container_id}/items/bulk-delete", json={"ids": [item_id]})


async def _bulk_update_annotation(world: World) -> Call:
    """Someone else's annotation (the owner's), as for the single PATCH."""
    body = {"items": [{"id": await world.owners_annotation(), "type": "topic"}]}
    return Call(f"/api/v1/containers/{world.container_id}/annotations/bulk", json=body)


async def _bulk_delete_annotation(world: World) -> Call:
    body = {"ids": [await world.owners_annotation()]}
    return Call(f"/api/v1/containers/{world.container_id}/annotations/bulk-delete", json=body)


async def _put_member(world: World) -> Call:
    newcomer = await world.api.user()
    return Call(P.format(world.project_id) + f"/members/{newcomer.id}", json={"role": "viewer"})


async def _delete_member(world: World) -> Call:
    return Call(P.format(world.project_id) + f"/members/{await world.fresh_member()}")


async def _transfer(world: World) -> Call:
    project_id = await world.fresh_project()
    return Call(P.format(project_id) + "/members/transfer-ownership", json={"user_id": world.team.manager.id})


MATRIX = documented_matrix()


def test_every_route_has_a_row_and_a_request(tmp_path: Path) -> None:
    app = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'routes.db'}", tmp_path))
    served = served_routes(app)
    assert served - set(MATRIX) == set(), "routes without a row in docs/permissions.md"
    assert set(MATRIX) - served == set(), "rows in docs/permissions.md for routes that do not exist"
    assert set(REQUESTS) == served, "routes without a request builder in this test"


@pytest.mark.parametrize(("method", "path"), sorted(MATRIX), ids=[f"{m} {p}" for m, p in sorted(MATRIX)])
async def test_each_caller_gets_the_documented_status(api: Api, app: Any, team: Team, method: str, path: str) -> None:
    superuser = await api.user("root", superuser=True)
    world = World(api=api, app=app, team=team, superuser=superuser)
    world.actors = {role: getattr(team, role) for role in CALLERS[1:-1]} | {"superuser": superuser}
    build = REQUESTS[(method, path)]
    got: dict[str, int] = {}
    for caller in CALLERS:
        call = await build(world, caller)
        actor = world.actor(caller)
        headers = call.headers if call.headers is not None else (actor.headers if actor else {})
        response = await api.client.request(
            method, call.url, json=call.json, data=call.data, files=call.files, headers=headers
        )
        got[caller] = response.status_code
        if response.status_code >= 400 and response.status_code != 401:
            assert response.headers["content-type"].startswith("application/problem+json"), response.text
    assert got == MATRIX[(method, path)], _explain(got, MATRIX[(method, path)])


def _explain(got: dict[str, int], expected: dict[str, int]) -> str:
    return "; ".join(
        f"{caller}: got {got[caller]}, documented {expected[caller]}"
        for caller in CALLERS
        if got[caller] != expected[caller]
    )


# GET routes whose answer is not a JSON document: a file, an event stream, and the OpenID Connect routes (no
# provider is configured here; tests/auth/test_oidc.py covers them).
NOT_JSON_READS = {
    "/api/v1/jobs/{job_id}/download",
    "/api/v1/jobs/{job_id}/events",
    "/api/v1/auth/oauth/{provider}/authorize",
    "/api/v1/auth/oauth/{provider}/callback",
}
GET_API_ROUTES = sorted(
    path for method, path in REQUESTS if method == "GET" and path.startswith("/api/v1/") and path not in NOT_JSON_READS
)


@pytest.mark.parametrize("path", GET_API_ROUTES)
async def test_every_json_read_has_an_etag_and_revalidates_to_304(api: Api, app: Any, team: Team, path: str) -> None:
    """Issue 5's conditional requests over every GET route there is (new ones included): a JSON answer carries
    an ETag and a deliberate Cache-Control, and sending the ETag back answers 304 without a body."""
    superuser = await api.user("root", superuser=True)
    world = World(api=api, app=app, team=team, superuser=superuser)
    world.actors = {role: getattr(team, role) for role in CALLERS[1:-1]} | {"superuser": superuser}
    for caller in ("owner", "superuser"):  # the administrators' routes refuse the owner
        call = await REQUESTS[("GET", path)](world, caller)
        headers = call.headers if call.headers is not None else world.actors[caller].headers
        first = await api.client.get(call.url, headers=headers)
        if first.status_code != 403:
            break
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/json", call.url
    assert first.headers["cache-control"] in ("private, no-cache", "private, no-store"), first.headers
    etag = first.headers["etag"]
    again = await api.client.get(call.url, headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304, again.text
    assert again.content == b""
