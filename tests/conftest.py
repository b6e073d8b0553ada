"""Test fixtures: every API test runs on SQLite and on PostgreSQL, against a schema built by the migrations.

Tests are isolated by emptying every table before each test (one TRUNCATE on PostgreSQL), so they may
open as many connections as they like, as the real service does.

PostgreSQL comes from TEST_POSTGRES_URL (default: postgres on 127.0.0.1:5432, trust auth); its database is
dropped and recreated for the session. Where PostgreSQL is unreachable its tests are skipped with the
reason, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.config import Environment, Settings
from annotation_platform.core.migrations import alembic_config
from annotation_platform.main import create_app
from annotation_platform.models import Base

DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/annotation_platform_test"
BACKENDS = ("sqlite", "postgresql")
PASSWORD = "a perfectly fine passphrase"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend", choices=(*BACKENDS, "all"), default="all", help="run the database tests on this backend"
    )


def postgres_url() -> str:
    """TEST_POSTGRES_URL; under pytest-xdist each process gets a database of its own (the name + `_gw0`, ...)."""
    url = make_url(os.environ.get("TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    process = os.environ.get("PYTEST_XDIST_WORKER")
    if process:
        url = url.set(database=f"{url.database}_{process}")
    return url.render_as_string(hide_password=False)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


async def _recreate_postgres_database(url: str) -> None:
    parsed = make_url(url)
    admin = await asyncpg.connect(
        host=parsed.host, port=parsed.port or 5432, user=parsed.username, password=parsed.password, database="postgres"
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


def migrate(url: str) -> None:
    from alembic import command

    config = alembic_config(url)
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")


def prepare_database(backend: str, tmp: Path) -> str:
    """A migrated, empty database for `backend`; skips (or fails in CI) when PostgreSQL is unreachable."""
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp / 'test.db'}"
    else:
        url = postgres_url()
        try:
            asyncio.run(_recreate_postgres_database(url))
        except (OSError, asyncpg.PostgresError) as exc:
            reason = f"PostgreSQL not reachable at {make_url(url).render_as_string(hide_password=True)}: {exc}"
            if in_ci():
                pytest.fail(f"{reason} (CI=true: PostgreSQL is required)")
            pytest.skip(f"{reason}; set TEST_POSTGRES_URL to run these tests")
    migrate(url)
    return url


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    wanted = request.config.getoption("--backend")
    if wanted not in ("all", request.param):
        pytest.skip(f"--backend {wanted}")
    return str(request.param)


@pytest.fixture(scope="session")
def database_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return prepare_database(backend, tmp_path_factory.mktemp(backend))


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": Environment.test,
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": "test-secret-key-that-is-long-enough-0123456789",
        "session_touch_interval_seconds": 3600,
        # The suite registers and logs in hundreds of users from one address, and its tests share one app (and
        # so one set of in-memory counters): the tests of limits and lockouts build apps that enable them.
        "rate_limit_enabled": False,
        "login_lockout_attempts": 0,
        # Tests read right after writing rows with SQL of their own (which no cache hears of): the tests of the
        # cache build apps that enable it; TEST_CACHE=1 runs any test with the in-process cache on.
        "cache_enabled": os.environ.get("TEST_CACHE") == "1",
        **overrides,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return make_settings(database_url, tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    yield application
    await application.state.engine.dispose()


@pytest.fixture(scope="session")
def engine(app: Any) -> AsyncEngine:
    engine: AsyncEngine = app.state.engine
    return engine


async def empty_all_tables(engine: AsyncEngine) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))


@asynccontextmanager
async def serve(application: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client on an app a test built for itself, whose connections are closed afterwards."""
    transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http
    finally:
        await application.state.engine.dispose()
        if application.state.cache is not None:
            await application.state.cache.close()
        if application.state.redis is not None:
            await application.state.redis.aclose()


@pytest.fixture
async def client(app: Any, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    await empty_all_tables(engine)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@dataclass
class QueryCounter:
    statements: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(engine: AsyncEngine) -> Iterator[QueryCounter]:
    counter = QueryCounter()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        counter.statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    yield counter
    event.remove(engine.sync_engine, "before_cursor_execute", record)


@dataclass
class Actor:
    """A registered, logged-in user as the tests see them."""

    id: str
    email: str
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """Short-hands for building the state a test needs through the public API."""

    def __init__(self, client: httpx.AsyncClient, engine: AsyncEngine) -> None:
        self.client = client
        self.engine = engine

    async def user(self, name: str | None = None, *, superuser: bool = False) -> Actor:
        name = name or f"user{uuid.uuid4().hex[:8]}"
        email = f"{name}@example.org"
        response = await self.client.post("/api/v1/auth/register", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        user_id = response.json()["id"]
        if superuser:
            async with self.engine.begin() as connection:
                await connection.execute(
                    text("UPDATE users SET is_superuser = :yes WHERE email = :email"), {"yes": True, "email": email}
                )
        login = await self.client.post("/api/v1/auth/jwt/login", data={"username": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        return Actor(id=user_id, email=email, username=response.json()["username"], token=login.json()["access_token"])

    async def project(self, owner: Actor, **fields: Any) -> dict[str, Any]:
        response = await self.client.post("/api/v1/projects", json={"name": "Project", **fields}, headers=owner.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def add_member(self, project: dict[str, Any], by: Actor, member: Actor, role: str) -> None:
        response = await self.client.put(
            f"/api/v1/projects/{project['id']}/members/{member.id}", json={"role": role}, headers=by.headers
        )
        assert response.status_code in (200, 201), response.text

    async def container(self, project: dict[str, Any], by: Actor, **fields: Any) -> dict[str, Any]:
        body = {"name": f"room-{uuid.uuid4().hex[:6]}", "type": "chat_room", **fields}
        response = await self.client.post(f"/api/v1/projects/{project['id']}/containers", json=body, headers=by.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def items(self, container: dict[str, Any], by: Actor, count: int, **fields: Any) -> list[dict[str, Any]]:
        rows = [{"external_id": f"t{index:05d}", "content": f"turn number {index}", **fields} for index in range(count)]
        response = await self.client.post(
            f"/api/v1/containers/{container['id']}/items/bulk", json={"items": rows}, headers=by.headers
        )
        assert response.status_code == 201, response.text
        return list(response.json()["items"])

    async def annotate(self, item: dict[str, Any], by: Actor, **fields: Any) -> dict[str, Any]:
        body = {"type": "thread", "data": {"thread_id": "1"}, **fields}
        response = await self.client.post(f"/api/v1/items/{item['id']}/annotations", json=body, headers=by.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
def api(client: httpx.AsyncClient, engine: AsyncEngine) -> Api:
    return Api(client, engine)


@dataclass
class Team:
    """A project with one member of each role, a stranger, and a container of items."""

    owner: Actor
    manager: Actor
    reviewer: Actor
    annotator: Actor
    viewer: Actor
    stranger: Actor
    project: dict[str, Any]
    container: dict[str, Any]
    items: list[dict[str, Any]]


@pytest.fixture
async def team(api: Api) -> Team:
    return await build_team(api)


async def build_team(api: Api) -> Team:
    """The `team` fixture's state, for fixtures of a wider scope that build their own."""
    owner = await api.user("owner")
    project = await api.project(owner, name="Debates")
    members = {}
    for role in ("manager", "reviewer", "annotator", "viewer"):
        members[role] = await api.user(role)
        await api.add_member(project, owner, members[role], role)
    container = await api.container(project, owner, name="VAC_R10")
    items = await api.items(container, owner, 5)
    return Team(
        owner=owner,
        stranger=await api.user("stranger"),
        project=project,
        container=container,
        items=items,
        **members,
    )


def problem(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """Asserts a problem document with this status (and code) and returns it."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = dict(response.json())
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    assert body["type"].endswith(f"#{body['code']}")
    return body
