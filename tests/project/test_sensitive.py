"""Sensitive projects: item content and metadata, annotation data and every copy of them are stored encrypted;
the API answers plaintext; a value whose key left ENCRYPTION_KEYS answers 503. Plain projects are unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.config import Settings
from annotation_platform.core.crypto import generate_key_entry
from annotation_platform.key_rotation.service import key_rotation_service
from annotation_platform.main import create_app
from tests.agreement.test_endpoints import A, B, agreement, label_room
from tests.conftest import Api, Team, make_settings, problem, serve

ITEMS = "/api/v1/containers/{}/items"
SECRET = "segredo: a vacinação deveria ser um dever"


async def _raw(engine: AsyncEngine, statement: str, **params: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(statement), params)).all())


def _sealed(value: Any) -> bool:
    """A raw column value holds a ciphertext token (a JSON column: the token as a JSON string)."""
    if isinstance(value, str) and value.startswith('"'):
        value = value.strip('"')
    return isinstance(value, str) and value.startswith("enc:v1:")


async def _sensitive_setup(api: Api) -> tuple[Any, dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    owner = await api.user("owner")
    project = await api.project(owner, name="Clinic", sensitive=True)
    container = await api.container(project, owner)
    response = await api.client.post(
        ITEMS.format(container["id"]) + "/bulk",
        json={
            "items": [
                {"external_id": "t1", "content": SECRET, "metadata": {"speaker": "patient 7"}},
                {"external_id": "t2", "content": "second turn", "metadata": {"speaker": "doctor"}},
            ]
        },
        headers=owner.headers,
    )
    assert response.status_code == 201, response.text
    return owner, project, container, response.json()["items"]


async def test_sensitive_columns_hold_ciphertext_and_the_api_answers_plaintext(
    api: Api, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, _, container, items = await _sensitive_setup(api)
    single = await client.post(
        ITEMS.format(container["id"]),
        json={"external_id": "t3", "content": "third", "metadata": {"n": 3}},
        headers=owner.headers,
    )
    assert single.status_code == 201, single.text
    assert single.json()["content"] == "third"

    rows = await _raw(engine, "SELECT external_id, content, metadata FROM items ORDER BY external_id")
    assert [row[0] for row in rows] == ["t1", "t2", "t3"]
    for _, content, metadata in rows:
        assert content.startswith("enc:v1:")
        assert _sealed(metadata)
        assert "vacina" not in content
        assert "patient" not in str(metadata)

    page = await client.get(ITEMS.format(container["id"]), headers=owner.headers)
    assert [(i["content"], i["metadata"]) for i in page.json()["items"]] == [
        (SECRET, {"speaker": "patient 7"}),
        ("second turn", {"speaker": "doctor"}),
        ("third", {"n": 3}),
    ]
    one = await client.get(f"/api/v1/items/{items[0]['id']}", headers=owner.headers)
    assert one.json()["content"] == SECRET

    changed = await client.patch(
        f"/api/v1/items/{items[0]['id']}",
        json={"content": "new text", "metadata": {"speaker": "x"}},
        headers=owner.headers,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["content"], changed.json()["metadata"]) == ("new text", {"speaker": "x"})
    ((content, metadata),) = await _raw(engine, "SELECT content, metadata FROM items WHERE external_id = 't1'")
    assert content.startswith("enc:v1:")
    assert _sealed(metadata)
    again = await client.get(f"/api/v1/items/{items[0]['id']}", headers=owner.headers)
    assert again.json()["content"] == "new text"

    bulk = await client.patch(
        ITEMS.format(container["id"]) + "/bulk",
        json={"items": [{"id": items[1]["id"], "metadata": {"speaker": "nurse"}}]},
        headers=owner.headers,
    )
    assert bulk.status_code == 200, bulk.text
    assert bulk.json()["items"][0]["metadata"] == {"speaker": "nurse"}
    ((metadata,),) = await _raw(engine, "SELECT metadata FROM items WHERE external_id = 't2'")
    assert _sealed(metadata)

    audit = await _raw(engine, "SELECT before, after FROM audit_events WHERE action = 'item.update'")
    assert "new text" not in str(audit)
    assert "[encrypted]" in str(audit)


async def test_annotations_and_their_history_are_sealed_and_revert_works(
    api: Api, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, _, container, items = await _sensitive_setup(api)
    created = await api.annotate(
        items[0], owner, type="span", data={"label": "diagnosis"}, start_offset=0, end_offset=7
    )
    too_far = await client.post(
        f"/api/v1/items/{items[1]['id']}/annotations",
        json={"type": "span", "data": {}, "start_offset": 0, "end_offset": 12},
        headers=owner.headers,
    )
    problem(too_far, 422, "offsets_out_of_range")
    url = f"/api/v1/annotations/{created['id']}"
    updated = await client.patch(url, json={"data": {"label": "symptom"}}, headers=owner.headers)
    assert updated.status_code == 200, updated.text
    assert updated.json()["data"] == {"label": "symptom"}
    bulk = await client.patch(
        f"/api/v1/containers/{container['id']}/annotations/bulk",
        json={"items": [{"id": created["id"], "data": {"label": "drug"}}]},
        headers=owner.headers,
    )
    assert bulk.status_code == 200, bulk.text
    assert bulk.json()["items"][0]["data"] == {"label": "drug"}
    more = await client.post(
        f"/api/v1/containers/{container['id']}/annotations/bulk",
        json={
            "items": [
                {"item_external_id": "t2", "type": "span", "data": {"label": "x"}, "start_offset": 0, "end_offset": 11}
            ]
        },
        headers=owner.headers,
    )
    assert more.status_code == 201, more.text

    for (data,) in await _raw(engine, "SELECT data FROM annotations"):
        assert _sealed(data)
    revisions = await _raw(
        engine,
        "SELECT version, data FROM annotation_revisions WHERE annotation_id = :id",
        id=created["id"] if engine.dialect.name == "postgresql" else created["id"].replace("-", ""),
    )
    assert len(revisions) == 3
    assert all(_sealed(data) for _, data in revisions)

    history = await client.get(url + "/history", headers=owner.headers)
    assert [r["data"] for r in history.json()["items"]] == [
        {"label": "diagnosis"},
        {"label": "symptom"},
        {"label": "drug"},
    ]
    reverted = await client.post(url + "/revert", json={"version": 1}, headers=owner.headers)
    assert reverted.status_code == 200, reverted.text
    assert reverted.json()["data"] == {"label": "diagnosis"}
    listed = await client.get(f"/api/v1/items/{items[0]['id']}/annotations", headers=owner.headers)
    assert [a["data"] for a in listed.json()["items"]] == [{"label": "diagnosis"}]

    deleted = await client.delete(url, headers=owner.headers)
    assert deleted.status_code == 204, deleted.text
    history = await client.get(url + "/history", headers=owner.headers)
    assert history.json()["items"][-1]["data"] == {"label": "diagnosis"}
    audit = await _raw(engine, "SELECT before, after FROM audit_events WHERE action LIKE 'annotation.%'")
    assert "diagnosis" not in str(audit)
    assert "symptom" not in str(audit)


async def test_a_ciphertext_copied_to_another_row_does_not_decrypt(
    api: Api, client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    owner, _, _, items = await _sensitive_setup(api)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "UPDATE items SET content = (SELECT content FROM items WHERE external_id = 't1'), "
                "metadata = (SELECT metadata FROM items WHERE external_id = 't1') WHERE external_id = 't2'"
            )
        )
    copied = await client.get(f"/api/v1/items/{items[1]['id']}", headers=owner.headers)
    problem(copied, 500, "encrypted_value_invalid")


async def test_plain_projects_store_plaintext(api: Api, engine: AsyncEngine) -> None:
    owner = await api.user("owner")
    project = await api.project(owner)
    container = await api.container(project, owner)
    items = await api.items(container, owner, 1)
    await api.annotate(items[0], owner)
    ((content,),) = await _raw(engine, "SELECT content FROM items")
    assert content == "turn number 0"
    ((data,),) = await _raw(engine, "SELECT data FROM annotations")
    assert "thread_id" in str(data)


async def test_a_value_whose_key_left_the_ring_answers_503(
    api: Api, client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    old = generate_key_entry("old")
    with_old = make_settings(settings.database_url, tmp_path, encryption_keys=old)
    async with serve(create_app(with_old)) as http:
        helper = Api(http, api.engine)
        owner, _, container, items = await _sensitive_setup(helper)
        annotation = await helper.annotate(items[0], owner, data={"label": "x"})
    without = make_settings(settings.database_url, tmp_path, encryption_keys=generate_key_entry("new"))
    async with serve(create_app(without)) as http:
        for path in (
            f"/api/v1/items/{items[0]['id']}",
            ITEMS.format(container["id"]),
            f"/api/v1/annotations/{annotation['id']}",
            f"/api/v1/annotations/{annotation['id']}/history",
        ):
            body = problem(await http.get(path, headers=owner.headers), 503, "encryption_key_unavailable")
            assert "old" not in body["detail"] or "key" in body["detail"]
    async with serve(
        create_app(make_settings(settings.database_url, tmp_path, encryption_keys=f"{generate_key_entry('new')},{old}"))
    ) as http:
        answer = await http.get(f"/api/v1/items/{items[0]['id']}", headers=owner.headers)
        assert answer.json()["content"] == SECRET


async def test_agreement_and_gold_of_a_sensitive_project_match_a_plain_one(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    """The same labels in a plain and a sensitive project give the same report, gold set and open items."""
    sensitive = await api.project(team.owner, name="Clinic", sensitive=True)
    for member, role in ((team.annotator, "annotator"), (team.reviewer, "reviewer"), (team.viewer, "viewer")):
        await api.add_member(sensitive, team.owner, member, role)
    answers = []
    for project in (team.project, sensitive):
        team.project = project
        room = await label_room(api, team, [(team.annotator, A), (team.reviewer, B)])
        report = (await agreement(client, room, team.viewer)).json()
        url = f"/api/v1/containers/{room['id']}/gold"
        gold = await client.post(url, json={"type": "thread", "source": "majority"}, headers=team.reviewer.headers)
        assert gold.status_code == 201, gold.text
        listed = await client.get(f"{url}/open", params={"type": "thread", "context": 1}, headers=team.viewer.headers)
        assert listed.status_code == 200, listed.text
        for volatile in ("computed_at", "container_id"):
            report.pop(volatile, None)
        answers.append((report, gold.json()["gold_items"], _without_ids(listed.json()["items"])))
    assert answers[0] == answers[1]
    assert answers[1][2][0]["content"] == "turn number 2"


def _without_ids(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_ids(v) for k, v in value.items() if k not in ("item_id", "id")}
    if isinstance(value, list):
        return [_without_ids(v) for v in value]
    return value


async def test_webhook_payloads_are_sealed_and_rotation_reencrypts_every_column(
    api: Api, client: httpx.AsyncClient, settings: Settings, tmp_path: Path
) -> None:
    old, new = generate_key_entry("old"), generate_key_entry("new")
    with_old = make_settings(settings.database_url, tmp_path, encryption_keys=old)
    async with serve(create_app(with_old)) as http:
        helper = Api(http, api.engine)
        owner, project, _, items = await _sensitive_setup(helper)
        hooks = f"/api/v1/projects/{project['id']}/webhooks"
        hook = await http.post(
            hooks,
            json={"url": "https://93.184.216.34/hooks", "event_types": ["annotation.created"]},
            headers=owner.headers,
        )
        assert hook.status_code == 201, hook.text
        annotation = await helper.annotate(items[0], owner, data={"label": "diagnosis"})
        ((payload,),) = await _raw(api.engine, "SELECT payload FROM webhook_deliveries")
        assert payload.startswith("enc:v1:old:")
        assert "diagnosis" not in payload
        listed = await http.get(f"{hooks}/{hook.json()['id']}/deliveries", headers=owner.headers)
        assert listed.json()["items"][0]["payload"]["data"]["annotations"][0]["data"] == {"label": "diagnosis"}

    both = make_settings(settings.database_url, tmp_path, encryption_keys=f"{new},{old}")
    application = create_app(both)
    async with serve(application) as http:
        async with application.state.sessionmaker() as session:
            before = await key_rotation_service.status(session, key_ring=application.state.key_ring, settings=both)
        assert before["columns"]["webhook_deliveries.payload"] == {"old": 1}
        assert before["columns"]["items.metadata"] == {"old": 2}
        rotated = await key_rotation_service.rotate(
            application.state.sessionmaker, key_ring=application.state.key_ring, settings=both, batch=1
        )
        assert rotated.values["items.content"] == 2
        assert rotated.values["annotations.data"] == 1
        assert rotated.values["webhooks.secret"] == 1
        again = await key_rotation_service.rotate(
            application.state.sessionmaker, key_ring=application.state.key_ring, settings=both
        )
        assert again.values == {}
        async with application.state.sessionmaker() as session:
            after = await key_rotation_service.status(session, key_ring=application.state.key_ring, settings=both)
        assert {key for counts in after["columns"].values() for key in counts} == {"new"}
        assert await http.get(f"/api/v1/annotations/{annotation['id']}/history", headers=owner.headers)

    only_new = make_settings(settings.database_url, tmp_path, encryption_keys=new)
    async with serve(create_app(only_new)) as http:
        listed = await http.get(f"{hooks}/{hook.json()['id']}/deliveries", headers=owner.headers)
        assert listed.status_code == 200, listed.text
        assert listed.json()["items"][0]["payload"]["data"]["annotations"][0]["data"] == {"label": "diagnosis"}
        history = await http.get(f"/api/v1/annotations/{annotation['id']}/history", headers=owner.headers)
        assert history.json()["items"][0]["data"] == {"label": "diagnosis"}


async def test_pages_of_a_sensitive_project_never_rest_in_the_read_cache(
    api: Api, database_url: str, tmp_path: Path, engine: AsyncEngine
) -> None:
    """Item and annotation pages are cached for plain projects only; bulk writes of 150 rows take the
    one-statement path on PostgreSQL, and must seal too."""
    async with serve(create_app(make_settings(database_url, tmp_path, cache_enabled=True))) as http:
        cached = Api(http, http._transport.app.state.engine)  # type: ignore[attr-defined]
        owner = await cached.user("keeper")
        pages: dict[bool, dict[str, str]] = {}
        for sensitive in (False, True):
            project = await cached.project(owner, name=f"sensitive={sensitive}", sensitive=sensitive)
            room = await cached.container(project, owner)
            rows = [{"external_id": f"t{n}", "content": f"{SECRET} {sensitive} {n}"} for n in range(150)]
            created = await http.post(ITEMS.format(room["id"]) + "/bulk", json={"items": rows}, headers=owner.headers)
            assert created.status_code == 201, created.text
            labels = [
                {"item_external_id": f"t{n}", "type": "thread", "data": {"thread_id": f"{SECRET} {n}"}}
                for n in range(150)
            ]
            labelled = await http.post(
                f"/api/v1/containers/{room['id']}/annotations/bulk", json={"items": labels}, headers=owner.headers
            )
            assert labelled.status_code == 201, labelled.text
            pages[sensitive] = {
                "items": ITEMS.format(room["id"]) + "?limit=200",
                "annotations": f"/api/v1/containers/{room['id']}/annotations?limit=200",
            }
        cache = http._transport.app.state.cache  # type: ignore[attr-defined]
        for sensitive, urls in pages.items():
            for _round in range(2):
                items = (await http.get(urls["items"], headers=owner.headers)).json()["items"]
                assert items[0]["content"] == f"{SECRET} {sensitive} 0"
                annotations = (await http.get(urls["annotations"], headers=owner.headers)).json()["items"]
                assert annotations[0]["data"] == {"thread_id": f"{SECRET} 0"}

        stored = b"".join(value for _expiry, value in cache._entries.values())
        assert f"{SECRET} False 0".encode() in stored, "a plain project's pages are cached"
        assert f"{SECRET} True".encode() not in stored
    rows = await _raw(engine, "SELECT content FROM items WHERE content LIKE '%True%' OR content LIKE 'enc:%'")
    assert rows
    assert all(row[0].startswith("enc:v1:") for row in rows)
