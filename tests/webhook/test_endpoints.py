"""Registering webhooks: who may, what URLs are refused (SSRF), secrets shown once and stored encrypted, and the
events recorded in the transaction of the change they describe."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.core.outbound import TargetRefused, check_url
from tests.conftest import Api, Team, problem

PUBLIC_URL = "https://93.184.216.34/hooks/annotations"


def hooks_of(team: Team) -> str:
    return f"/api/v1/projects/{team.project['id']}/webhooks"


async def register(client: httpx.AsyncClient, team: Team, **fields: Any) -> dict[str, Any]:
    body = {"url": PUBLIC_URL, "event_types": ["annotation.created"], **fields}
    response = await client.post(hooks_of(team), json=body, headers=team.manager.headers)
    assert response.status_code == 201, response.text
    assert response.headers["Location"] == f"{hooks_of(team)}/{response.json()['id']}"
    return dict(response.json())


async def test_a_manager_registers_changes_and_deletes_a_webhook(
    client: httpx.AsyncClient, api: Api, team: Team, engine: AsyncEngine
) -> None:
    created = await register(client, team, description="lab notebook")
    assert created["secret"].startswith("whsec_")
    assert created["active"] is True
    assert created["created_by"] == team.manager.id
    async with engine.connect() as connection:
        stored = (await connection.execute(text("SELECT secret FROM webhooks"))).scalar_one()
    assert stored.startswith("enc:v1:")
    assert created["secret"] not in stored

    url = f"{hooks_of(team)}/{created['id']}"
    listed = (await client.get(hooks_of(team), headers=team.owner.headers)).json()
    assert [hook["id"] for hook in listed["items"]] == [created["id"]]
    assert "secret" not in listed["items"][0]
    assert "secret" not in (await client.get(url, headers=team.owner.headers)).json()

    changed = await client.patch(
        url, json={"event_types": ["job.finished", "job.finished"], "active": False}, headers=team.manager.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["event_types"] == ["job.finished"]
    assert changed.json()["active"] is False
    refused = await client.patch(url, json={"url": "http://127.0.0.1:9/x"}, headers=team.manager.headers)
    problem(refused, 422, "webhook_target_refused")
    assert (await client.get(url, headers=team.manager.headers)).json()["url"] == PUBLIC_URL

    other = await api.project(team.stranger, name="Elsewhere")
    elsewhere = f"/api/v1/projects/{other['id']}/webhooks/{created['id']}"
    problem(await client.get(elsewhere, headers=team.stranger.headers), 404)
    problem(await client.get(url, headers=team.reviewer.headers), 403)

    assert (await client.delete(url, headers=team.manager.headers)).status_code == 204
    problem(await client.get(url, headers=team.manager.headers), 404)


UNSAFE_URLS = (
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "https://10.1.2.3/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://224.0.0.1/hook",
    "https://0.0.0.0/hook",
    "https://100.64.0.1/hook",
    "https://[fe80::1]/hook",
    "https://[fd00::1]/hook",
    "http://127.1/hook",
    "http://0x7f000001/hook",
    "http://localhost./hook",
    "https://user:pass@93.184.216.34/hook",
    "ftp://93.184.216.34/hook",
    "not a url",
)


async def test_private_and_unsafe_urls_are_refused(client: httpx.AsyncClient, team: Team) -> None:
    for url in UNSAFE_URLS:
        response = await client.post(
            hooks_of(team), json={"url": url, "event_types": ["job.finished"]}, headers=team.manager.headers
        )
        body = problem(response, 422, "webhook_target_refused")
        assert body["errors"][0]["loc"] == ["body", "url"], url
    assert (await client.get(hooks_of(team), headers=team.manager.headers)).json()["items"] == []


def test_https_is_required_where_http_is_not_allowed() -> None:
    with pytest.raises(TargetRefused, match="https"):
        check_url("http://93.184.216.34/hook", allow_http=False)
    assert check_url("https://93.184.216.34/hook", allow_http=False).host == "93.184.216.34"


async def test_rotating_the_secret_shows_the_new_one_once(client: httpx.AsyncClient, team: Team) -> None:
    created = await register(client, team)
    url = f"{hooks_of(team)}/{created['id']}/rotate-secret"
    rotated = await client.post(url, headers=team.manager.headers)
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["secret"] != created["secret"]
    assert rotated.json()["previous_secret_expires_at"] is not None
    at_once = await client.post(url, json={"keep_previous_seconds": 0}, headers=team.manager.headers)
    assert at_once.json()["previous_secret_expires_at"] is None
    problem(await client.post(url, json={"keep_previous_seconds": -1}, headers=team.manager.headers), 422)


async def test_events_are_recorded_with_the_change_and_only_for_subscribers(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    annotations = await register(client, team)
    jobs_only = await register(client, team, event_types=["job.finished"])
    annotation = await api.annotate(team.items[0], team.annotator)
    bad_bulk = await client.post(
        f"/api/v1/containers/{team.container['id']}/annotations/bulk",
        json={"items": [{"item_id": team.items[0]["id"], "type": "thread", "data": {}, "end_offset": 10_000}]},
        headers=team.annotator.headers,
    )
    problem(bad_bulk, 422)

    deliveries = (
        await client.get(f"{hooks_of(team)}/{annotations['id']}/deliveries", headers=team.manager.headers)
    ).json()["items"]
    assert len(deliveries) == 1
    delivery = deliveries[0]
    assert delivery["status"] == "pending"
    assert delivery["attempts"] == 0
    assert delivery["event_type"] == "annotation.created"
    assert delivery["payload"]["type"] == "annotation.created"
    assert delivery["payload"]["data"]["project_id"] == team.project["id"]
    assert delivery["payload"]["data"]["annotations"][0]["id"] == annotation["id"]
    none = await client.get(f"{hooks_of(team)}/{jobs_only['id']}/deliveries", headers=team.manager.headers)
    assert none.json()["items"] == []
    pending = f"{hooks_of(team)}/{annotations['id']}/deliveries/{delivery['id']}/redeliver"
    problem(await client.post(pending, headers=team.manager.headers), 409, "delivery_not_finished")


async def test_a_cancelled_job_is_a_finished_job(client: httpx.AsyncClient, team: Team) -> None:
    webhook = await register(client, team, event_types=["job.finished"])
    export = await client.post(
        f"/api/v1/projects/{team.project['id']}/exports", json={"format": "jsonl"}, headers=team.owner.headers
    )
    assert export.status_code == 202, export.text
    cancelled = await client.post(f"/api/v1/jobs/{export.json()['id']}/cancel", headers=team.owner.headers)
    assert cancelled.json()["status"] == "cancelled"
    listed = await client.get(f"{hooks_of(team)}/{webhook['id']}/deliveries", headers=team.manager.headers)
    (delivery,) = listed.json()["items"]
    assert delivery["payload"]["type"] == "job.finished"
    assert delivery["payload"]["data"]["job"]["id"] == export.json()["id"]
    assert delivery["payload"]["data"]["job"]["status"] == "cancelled"


async def test_item_events_carry_references_one_event_per_request(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    webhook = await register(client, team, event_types=["item.created", "item.deleted"])
    created = await api.items(await api.container(team.project, team.owner), team.owner, 3)
    assert (await client.delete(f"/api/v1/items/{created[0]['id']}", headers=team.owner.headers)).status_code == 204
    listed = await client.get(f"{hooks_of(team)}/{webhook['id']}/deliveries", headers=team.manager.headers)
    bulk, deleted = (delivery["payload"] for delivery in listed.json()["items"])
    assert (bulk["type"], bulk["data"]["count"]) == ("item.created", 3)
    assert [item["id"] for item in bulk["data"]["items"]] == [item["id"] for item in created]
    assert set(bulk["data"]["items"][0]) == {"id", "container_id", "external_id", "sequence"}
    assert (deleted["type"], deleted["data"]["items"][0]["id"]) == ("item.deleted", created[0]["id"])


async def test_every_path_that_deletes_annotations_tells_annotation_deleted(
    client: httpx.AsyncClient, api: Api, team: Team
) -> None:
    """A delete of one annotation, a bulk delete, an item's delete (one item and many) and a gold set's delete:
    each is one `annotation.deleted` event with every annotation it took, as it was; an item without
    annotations takes none and tells nothing."""
    webhook = await register(client, team, event_types=["annotation.deleted"])
    container = f"/api/v1/containers/{team.container['id']}"
    rows = [{"item_id": item["id"], "type": "sentiment", "data": {"label": "pos"}} for item in team.items[:4]]
    created = await client.post(f"{container}/annotations/bulk", json={"items": rows}, headers=team.annotator.headers)
    assert created.status_code == 201, created.text
    ids = [annotation["id"] for annotation in created.json()["items"]]
    gold = await client.post(
        f"{container}/gold",
        json={"type": "sentiment", "source": "annotator", "annotator": team.annotator.username},
        headers=team.reviewer.headers,
    )
    assert gold.status_code == 201, gold.text
    listed = (await client.get(f"{container}/annotations", headers=team.owner.headers)).json()["items"]
    gold_on = {a["item_id"]: a["id"] for a in listed if a["is_gold"]}

    single = await client.delete(f"/api/v1/annotations/{ids[0]}", headers=team.annotator.headers)
    assert single.status_code == 204, single.text
    bulk = await client.post(
        f"{container}/annotations/bulk-delete", json={"ids": [ids[1]]}, headers=team.manager.headers
    )
    assert bulk.status_code == 204, bulk.text
    item = await client.delete(f"/api/v1/items/{team.items[2]['id']}", headers=team.manager.headers)
    assert item.status_code == 204, item.text
    items = await client.post(
        f"{container}/items/bulk-delete", json={"ids": [team.items[3]["id"]]}, headers=team.manager.headers
    )
    assert items.status_code == 204, items.text
    bare = await client.delete(f"/api/v1/items/{team.items[4]['id']}", headers=team.manager.headers)
    assert bare.status_code == 204, bare.text
    dropped = await client.delete(f"{container}/gold", params={"type": "sentiment"}, headers=team.reviewer.headers)
    assert dropped.status_code == 204, dropped.text

    deliveries = await client.get(f"{hooks_of(team)}/{webhook['id']}/deliveries", headers=team.manager.headers)
    events = [delivery["payload"] for delivery in deliveries.json()["items"]]
    assert {event["type"] for event in events} == {"annotation.deleted"}
    told = [sorted(a["id"] for a in event["data"]["annotations"]) for event in events]
    assert [event["data"]["count"] for event in events] == [len(group) for group in told]
    item_ids = [item["id"] for item in team.items]
    assert told == [
        [ids[0]],
        [ids[1]],
        sorted([ids[2], gold_on[item_ids[2]]]),
        sorted([ids[3], gold_on[item_ids[3]]]),
        sorted([gold_on[item_ids[0]], gold_on[item_ids[1]]]),
    ], "one event per request; the item without annotations told nothing"
    assert all(a["is_gold"] for a in events[4]["data"]["annotations"])
    assert events[2]["data"]["annotations"][0]["data"] == {"label": "pos"}
