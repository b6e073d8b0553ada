"""Query work: every JSON read of the API costs a fixed number of statements, whatever the data's size, and on
PostgreSQL the big lists are read through an index that serves their order (no sort, no sequential scan).

The reads counted are every GET route of tests/test_permissions.py (its request builders), so a new route is
counted here as soon as it has its row there.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.change.repository import PG_CURRENT_TXID, PG_SETTLED_HORIZON
from annotation_platform.job.repository import job_repository
from annotation_platform.main import create_app
from annotation_platform.models import Backup
from tests.conftest import PASSWORD, Api, Team, build_team, empty_all_tables, make_settings, serve
from tests.test_permissions import CALLERS, GET_API_ROUTES, MATRIX, REQUESTS, World, unique

# Of each kind of row a read lists or embeds, how many more the larger world has than the small one.
MORE = 4

# Reads whose statement count may follow the data, each with the reason. None today; keep it so.
VARYING: dict[str, str] = {}

ROUTES = [path for path in GET_API_ROUTES if path not in VARYING]

# Statements a read costs at most: the login session with its user, the resource with the caller's role, the
# data, and a documented extra (e.g. gold marks); one more for the total a page is asked for.
BUDGET = 4
OVER_BUDGET = {
    "/api/v1/containers/{container_id}/agreement": (6, "a first read computes the report and stores it"),
    "/api/v1/projects/{project_id}/agreement": (7, "the containers, then their reports as a container's"),
    "/api/v1/projects/{project_id}/versions/{version_id}/diff": (5, "each of the two versions, each with access"),
    "/api/v1/users/me/export": (7, "one read for each kind of personal data"),
}

# Lists the larger world shows no more rows of (their statements are counted all the same), with the reason.
SAME_ROWS = {
    "/api/v1/projects/{project_id}/versions/{version_id}/diff": (
        "the request diffs a version against itself, and a diff's rows come from snapshot files, not from SQL"
    ),
}


@dataclass(frozen=True)
class Read:
    statements: list[str]  # every one the request sent, from authentication to the last total
    listed: int | None  # the rows of the answer's `items`, for a list


@dataclass(frozen=True)
class Counted:
    url: str
    small: Read
    large: Read


async def read(http: httpx.AsyncClient, engine: AsyncEngine, url: str, headers: dict[str, str]) -> Read:
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        response = await http.get(url, headers=headers)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    assert response.status_code == 200, (url, response.text)
    assert response.headers["content-type"] == "application/json", url
    body = response.json()
    return Read(seen, len(body["items"]) if isinstance(body, dict) and isinstance(body.get("items"), list) else None)


def whole_page(app: Any, path: str, url: str) -> str:
    """The URL asking for the largest page and its total where the route pages, so the page covers all rows."""
    schema = app.openapi()
    shared = schema.get("components", {}).get("parameters", {})
    parameters = [
        shared[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
        for p in schema["paths"][path]["get"].get("parameters", [])
    ]
    limit = next((p["schema"]["maximum"] for p in parameters if p["name"] == "limit"), None)
    if limit is None:
        return url
    return f"{url}{'&' if '?' in url else '?'}limit={limit}&include_total=true"


def caller_of(path: str) -> str:
    """The owner, or the superuser for the administrators' reads the owner may not make."""
    return "owner" if MATRIX[("GET", path)]["owner"] == 200 else "superuser"


async def label(api: Api, container: dict[str, Any], items: list[dict[str, Any]], by: Any, salt: int) -> None:
    """A thread label on each item, differing between annotators on some (disagreements, gold ties)."""
    rows = [
        {"item_id": item["id"], "type": "thread", "data": {"thread_id": str((index + salt * (index % 2)) % 3)}}
        for index, item in enumerate(items)
    ]
    response = await api.client.post(
        f"/api/v1/containers/{container['id']}/annotations/bulk", json={"items": rows}, headers=by.headers
    )
    assert response.status_code == 201, response.text


async def set_gold(api: Api, team: Team) -> None:
    url = f"/api/v1/containers/{team.container['id']}/gold"
    await api.client.delete(url, params={"type": "thread"}, headers=team.owner.headers)
    response = await api.client.post(url, json={"type": "thread", "source": "majority"}, headers=team.owner.headers)
    assert response.status_code == 201, response.text


async def add_job_errors(app: Any, job_ids: set[str], first: int, count: int) -> None:
    async with app.state.sessionmaker() as session, session.begin():
        for job_id in job_ids:
            errors = [{"seq": first + n, "row": first + n, "message": "a bad row"} for n in range(count)]
            await job_repository.add_errors(session, uuid.UUID(job_id), errors)


async def add_backups(app: Any, count: int) -> None:
    async with app.state.sessionmaker() as session, session.begin():
        for _ in range(count):
            session.add(Backup(backend="sqlite", filename=unique("backup-"), size_bytes=1, sha256="0" * 64))


async def small_world(api: Api, app: Any) -> World:
    """The team of tests/conftest.py with a little of everything: two annotators' labels in two containers (so
    that a project's agreement has a container to compute), a gold set, a backup."""
    team = await build_team(api)
    superuser = await api.user("root", superuser=True)
    world = World(api=api, app=app, team=team, superuser=superuser)
    world.actors = {role: getattr(team, role) for role in CALLERS[1:-1]} | {"superuser": superuser}
    await label(api, team.container, team.items, team.annotator, 0)
    await label(api, team.container, team.items, team.reviewer, 1)
    await set_gold(api, team)
    room = await api.container(team.project, team.owner)
    room_items = await api.items(room, team.owner, 3)
    await label(api, room, room_items, team.annotator, 0)
    await label(api, room, room_items, team.reviewer, 1)
    await add_backups(app, 1)
    return world


async def grow(world: World, urls: list[str]) -> None:
    """MORE of every kind of row the reads list or embed, in the same project, for the same caller, and on the
    very resources the URLs name (the annotations' revisions, the jobs' errors, the webhooks' deliveries)."""
    api, team, owner = world.api, world.team, world.team.owner
    project, container = team.project, team.container
    response = await api.client.post(
        f"/api/v1/containers/{container['id']}/items/bulk",
        json={"items": [{"external_id": unique("more-"), "content": f"turn {n}"} for n in range(3 * MORE)]},
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    items = team.items + list(response.json()["items"])
    annotators = [team.annotator, team.reviewer]
    for _ in range(MORE):
        newcomer = await api.user()
        await api.add_member(project, owner, newcomer, "annotator")
        annotators.append(newcomer)
    for salt, annotator in enumerate(annotators):
        await label(api, container, items, annotator, salt)
    for _ in range(MORE):
        room = await api.container(project, owner)
        room_items = await api.items(room, owner, 3)
        for salt, annotator in enumerate(annotators[:2]):
            await label(api, room, room_items, annotator, salt)
        await api.project(owner, name=unique("p-"))
        await world.owners_export()
        await world.owners_version()
        await world.owners_webhook()
        await world.owners_key()
        await api.client.post("/api/v1/auth/jwt/login", data={"username": owner.email, "password": PASSWORD})
    await set_gold(api, team)
    for revision in range(MORE):
        schema = {"type": "object", "properties": {f"field{revision}": {"type": "string"}}}
        changed = await api.client.patch(
            f"/api/v1/containers/{container['id']}", json={"item_schema": schema}, headers=owner.headers
        )
        assert changed.status_code == 200, changed.text
    for annotation_id in {found for url in urls for found in re.findall(r"/annotations/([0-9a-f-]{36})", url)}:
        for revision in range(MORE):
            edited = await api.client.patch(
                f"/api/v1/annotations/{annotation_id}",
                json={"data": {"thread_id": f"r{revision}"}},
                headers=owner.headers,
            )
            assert edited.status_code == 200, edited.text
    job_ids = {found for url in urls for found in re.findall(r"/jobs/([0-9a-f-]{36})", url)}
    await add_job_errors(world.app, job_ids, 2, 3 * MORE)
    await add_backups(world.app, MORE)


@pytest.fixture(scope="module")
async def counted(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Counted]:
    """Every read counted once in a small world, then again, the same request, once the world has grown. Each
    is the first of its kind in its world: what a first read does (an agreement report computed and stored) it
    does in both.

    An app of its own with the read cache off (whatever TEST_CACHE says), so that every read reaches the
    database; one world for all the reads, as building one per read would cost minutes."""
    settings = make_settings(database_url, tmp_path_factory.mktemp("query-work"), cache_enabled=False)
    application = create_app(settings)
    engine: AsyncEngine = application.state.engine
    async with serve(application) as http:
        await empty_all_tables(engine)
        api = Api(http, engine)
        world = await small_world(api, application)
        calls = {}
        for path in ROUTES:
            caller = caller_of(path)
            call = await REQUESTS[("GET", path)](world, caller)
            assert call.headers is None, path
            calls[path] = (whole_page(application, path, call.url), world.actors[caller].headers)
        await api.annotate(world.team.items[1], world.team.owner)  # a delivery for each webhook the reads made
        await add_job_errors(
            application, {m for url, _ in calls.values() for m in re.findall(r"/jobs/([0-9a-f-]{36})", url)}, 1, 1
        )
        small = {path: await read(http, engine, url, headers) for path, (url, headers) in calls.items()}
        await grow(world, [url for url, _ in calls.values()])
        await feed_settled(engine)
        large = {path: await read(http, engine, url, headers) for path, (url, headers) in calls.items()}
        await empty_all_tables(engine)
    return {path: Counted(calls[path][0], small[path], large[path]) for path in calls}


async def feed_settled(engine: AsyncEngine) -> None:
    """Waits until PostgreSQL's change feed shows every change written so far. It serves changes below the
    oldest transaction still open in the whole cluster, and other test processes share the cluster: one of
    their transactions, open while `grow()` wrote, would hide the larger world's changes from the feed."""
    if engine.dialect.name != "postgresql":
        return
    async with engine.connect() as connection:
        written = (await connection.execute(text(f"SELECT {PG_CURRENT_TXID}"))).scalar_one()
    for _ in range(600):
        async with engine.connect() as connection:
            if (await connection.execute(text(f"SELECT {PG_SETTLED_HORIZON}"))).scalar_one() > written:
                return
        await asyncio.sleep(0.05)
    raise AssertionError("a transaction elsewhere in the cluster stayed open for 30 seconds")


@pytest.mark.parametrize("path", ROUTES)
async def test_a_read_costs_the_same_statements_however_much_data_it_shows(
    counted: dict[str, Counted], path: str
) -> None:
    found = counted[path]
    small, large = found.small, found.large
    assert len(small.statements) == len(large.statements), _difference(found)
    budget = OVER_BUDGET[path][0] if path in OVER_BUDGET else BUDGET + ("include_total=true" in found.url)
    assert len(small.statements) <= budget, _listing(found)
    if small.listed is not None and path not in SAME_ROWS:
        assert small.listed > 0, f"{found.url}: the small world shows nothing here; small_world() misses it"
        assert large.listed > small.listed, f"{found.url}: the larger world shows no more; grow() misses it"


def _difference(found: Counted) -> str:
    """The statements whose number differs, each with its count in the small world and in the larger."""
    small, large = Counter(map(_short, found.small.statements)), Counter(map(_short, found.large.statements))
    lines = [f"{small[s]} -> {large[s]}: {s}" for s in dict.fromkeys([*small, *large]) if small[s] != large[s]]
    return "\n".join(
        [f"{found.url}: {len(found.small.statements)} statements, then {len(found.large.statements)}", *lines]
    )


def _listing(found: Counted) -> str:
    return "\n".join([f"{found.url}: {len(found.small.statements)} statements", *map(_short, found.small.statements)])


def _short(statement: str) -> str:
    return " ".join(statement.split())[:200]


@pytest.fixture
async def big_tables(api: Api, team: Team, engine: AsyncEngine) -> dict[str, Any]:
    """20,000 items with two annotations each (one item with 3,000 more), each annotation's first revision, and
    one annotation with 300;
    change feed entries and audit events for each annotation, in the team's project and in a stranger's project
    the owner does not see; all analysed as autovacuum would."""
    if engine.dialect.name != "postgresql":
        pytest.skip("query plans are checked on PostgreSQL")
    elsewhere = await api.project(team.stranger, name="Elsewhere")
    projects = {"project": team.project["id"], "elsewhere": elsewhere["id"]}
    both_projects = "(VALUES (CAST(:project AS uuid)), (CAST(:elsewhere AS uuid))) AS p(id)"
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO items (id, container_id, external_id, content, metadata, sequence, created_at,"
                " updated_at) SELECT gen_random_uuid(), :container, 'bulk' || g, 'text', '{}', 100 + g, now(),"
                " now() FROM generate_series(1, 20000) AS g"
            ),
            {"container": team.container["id"]},
        )
        await connection.execute(
            text(
                "INSERT INTO annotations (id, item_id, container_id, type, data, created_by, version, is_gold,"
                " created_at, updated_at) SELECT gen_random_uuid(), i.id, i.container_id, t, '{}', :user, 1, false,"
                " now(), now() FROM items AS i CROSS JOIN (VALUES ('thread'), ('topic')) AS types(t)"
            ),
            {"user": team.owner.id},
        )
        await connection.execute(
            text(
                "INSERT INTO annotations (id, item_id, container_id, type, data, created_by, version, is_gold,"
                " created_at, updated_at, start_offset, end_offset) SELECT gen_random_uuid(), :item, :container,"
                " 'span', '{}', :user, 1, false, now(), now(), 0, 1 FROM generate_series(1, 3000)"
            ),
            {"item": team.items[0]["id"], "container": team.container["id"], "user": team.owner.id},
        )
        annotation = (
            await connection.execute(
                text("SELECT id FROM annotations WHERE item_id = :item AND type = 'thread'"),
                {"item": team.items[0]["id"]},
            )
        ).scalar_one()
        await connection.execute(
            text(
                "INSERT INTO annotation_revisions (annotation_id, version, container_id, item_id, action, type, data,"
                " is_gold, changed_by, changed_at) SELECT a.id, v, a.container_id, a.item_id,"
                " CASE WHEN v = 1 THEN 'created' ELSE 'updated' END, a.type, a.data, false, a.created_by, now()"
                " FROM annotations AS a CROSS JOIN generate_series(1, 300) AS v WHERE v = 1 OR a.id = :annotation"
            ),
            {"annotation": annotation},
        )
        await connection.execute(
            text(
                "INSERT INTO changes (txid, project_id, resource_type, resource_id, container_id, action, version,"
                " changed_by, changed_at) SELECT 1, p.id, 'annotation', a.id, a.container_id, 'created', 1,"
                f" a.created_by, now() FROM annotations AS a CROSS JOIN {both_projects}"
            ),
            projects,
        )
        await connection.execute(
            text(
                "INSERT INTO audit_events (id, occurred_at, actor_user_id, action, resource_type, resource_id,"
                " project_id) SELECT gen_random_uuid(), now(), a.created_by, 'annotation.create', 'annotation',"
                f" CAST(a.id AS text), p.id FROM annotations AS a CROSS JOIN {both_projects}"
            ),
            projects,
        )
        await connection.execute(text("ANALYZE items, annotations, annotation_revisions, changes, audit_events"))
    return {"container": team.container["id"], "item": team.items[0]["id"], "annotation": str(annotation)}


async def test_big_pages_are_read_in_index_order(
    client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine, big_tables: dict[str, Any]
) -> None:
    """The item and annotation pages, an annotation's history, the change feed and the audit trail: each page is
    one statement whose plan walks an index in the page's order, with no sort and no sequential scan."""
    container, project = big_tables["container"], team.project["id"]
    root = await api.user("root", superuser=True)
    first = await client.get(f"/api/v1/containers/{container}/items", headers=team.viewer.headers)
    cursor = first.json()["next_cursor"]
    pages = [
        (f"/api/v1/containers/{container}/items", {"cursor": cursor}, team.viewer),
        (f"/api/v1/containers/{container}/annotations", {}, team.viewer),
        (f"/api/v1/containers/{container}/annotations", {"type": "topic"}, team.viewer),
        (f"/api/v1/items/{big_tables['item']}/annotations", {}, team.viewer),
        (f"/api/v1/annotations/{big_tables['annotation']}/history", {}, team.viewer),
        (f"/api/v1/projects/{project}/changes", {}, team.viewer),
        ("/api/v1/audit-events", {"project_id": project}, team.owner),
        ("/api/v1/audit-events", {}, team.owner),
        ("/api/v1/audit-events", {}, root),
    ]
    for url, params, caller in pages:
        captured: list[tuple[str, Any]] = []

        def record(
            _conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any, into: list[Any] = captured
        ) -> None:
            if "ORDER BY" in statement:
                into.append((statement, parameters))

        event.listen(engine.sync_engine, "before_cursor_execute", record)
        try:
            response = await client.get(url, params=params, headers=caller.headers)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", record)
        assert response.status_code == 200, response.text
        assert response.json()["items"], (url, params)
        assert len(captured) == 1, captured
        statement, parameters = captured[0]
        async with engine.connect() as connection:
            plan = "\n".join(row[0] for row in await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters))
        assert "Sort" not in plan, (url, params, plan)
        assert "Seq Scan" not in plan, (url, params, plan)
