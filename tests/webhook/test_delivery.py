"""Sending deliveries in the test process (the worker calls the same functions): to a receiver on loopback, with
private targets allowed for these tests only; signatures checked by an independent implementation."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.config import Settings
from annotation_platform.core.crypto import KeyRing
from annotation_platform.main import create_app
from annotation_platform.webhook.delivery import deliver, sweep
from tests.conftest import Actor, Api, empty_all_tables, make_settings, problem, serve
from tests.webhook.receiver import Receiver, running_receiver, valid_signatures

RETRY_SECONDS = 2.0  # long enough that a loaded machine does not reach the retry inside one call


@dataclass
class Hub:
    app: Any
    http: httpx.AsyncClient
    api: Api
    settings: Settings
    owner: Actor
    hooks: str
    items: list[dict[str, Any]]

    async def register(self, url: str, **fields: Any) -> dict[str, Any]:
        body = {"url": url, "event_types": ["annotation.created"], **fields}
        response = await self.http.post(self.hooks, json=body, headers=self.owner.headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    async def send(
        self, webhook: dict[str, Any], settings: Settings | None = None, key_ring: KeyRing | None = None
    ) -> int:
        return await deliver(
            self.app.state.sessionmaker,
            uuid.UUID(webhook["id"]),
            settings=settings or self.settings,
            key_ring=key_ring or self.app.state.key_ring,
        )

    async def deliveries(self, webhook: dict[str, Any]) -> list[dict[str, Any]]:
        response = await self.http.get(f"{self.hooks}/{webhook['id']}/deliveries", headers=self.owner.headers)
        return list(response.json()["items"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


@pytest.fixture
async def hub(database_url: str, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Hub]:
    await empty_all_tables(engine)
    settings = make_settings(
        database_url,
        tmp_path / "data",
        webhook_allow_private_targets=True,
        webhook_retry_base_seconds=RETRY_SECONDS,
        webhook_timeout_seconds=5,
    )
    app = create_app(settings)
    async with serve(app) as http:
        api = Api(http, app.state.engine)
        owner = await api.user("owner")
        project = await api.project(owner)
        items = await api.items(await api.container(project, owner), owner, 3)
        yield Hub(app, http, api, settings, owner, f"/api/v1/projects/{project['id']}/webhooks", items)


async def test_signed_calls_retried_in_order_and_redelivered(hub: Hub, receiver: Receiver) -> None:
    webhook = await hub.register(receiver.url)
    receiver.answers = [500]
    first = await hub.api.annotate(hub.items[0], hub.owner)
    second = await hub.api.annotate(hub.items[1], hub.owner)

    assert await hub.send(webhook) == 1, "the first delivery fails, and the second waits behind it"
    failed, waiting = await hub.deliveries(webhook)
    assert (failed["status"], failed["attempts"], failed["response_status"]) == ("pending", 1, 500)
    assert failed["next_attempt_at"] is not None
    assert len(failed["response_snippet"]) == 512
    assert failed["latency_ms"] is not None
    assert failed["error"] == "answered 500"
    assert (waiting["status"], waiting["attempts"]) == ("pending", 0)
    assert await hub.send(webhook) == 0, "nothing goes before the retry is due"
    assert len(receiver.calls) == 1

    await asyncio.sleep(RETRY_SECONDS + 0.05)
    assert await sweep(hub.app.state.sessionmaker) == 1
    assert await hub.send(webhook) == 2
    calls = receiver.calls
    assert [call.json["data"]["annotations"][0]["id"] for call in calls] == [first["id"], first["id"], second["id"]]
    assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"] != calls[2].headers["webhook-id"]
    assert calls[0].body == calls[1].body
    assert all(valid_signatures(webhook["secret"], call) == 1 for call in calls)
    assert all(call.json["type"] == "annotation.created" for call in calls)
    done = await hub.deliveries(webhook)
    assert [(d["status"], d["attempts"], d["response_status"]) for d in done] == [
        ("succeeded", 2, 204),
        ("succeeded", 1, 204),
    ]
    assert all(d["delivered_at"] is not None for d in done)

    again = await hub.http.post(
        f"{hub.hooks}/{webhook['id']}/deliveries/{done[0]['id']}/redeliver", headers=hub.owner.headers
    )
    assert again.status_code == 202, again.text
    assert again.json()["redelivery_of"] == done[0]["id"]
    assert again.json()["status"] == "pending"
    assert await hub.send(webhook) == 1
    assert receiver.calls[3].headers["webhook-id"] == calls[0].headers["webhook-id"]
    assert receiver.calls[3].body == calls[0].body
    other = await hub.http.post(
        f"{hub.hooks}/{webhook['id']}/deliveries/{uuid.uuid4()}/redeliver", headers=hub.owner.headers
    )
    problem(other, 404)


async def test_a_rotated_secret_signs_beside_the_old_one_for_the_grace_period(hub: Hub, receiver: Receiver) -> None:
    webhook = await hub.register(receiver.url)
    rotate = f"{hub.hooks}/{webhook['id']}/rotate-secret"
    rotated = (await hub.http.post(rotate, headers=hub.owner.headers)).json()["secret"]
    await hub.api.annotate(hub.items[0], hub.owner)
    await hub.send(webhook)
    call = receiver.calls[-1]
    assert len(call.headers["webhook-signature"].split(" ")) == 2
    assert valid_signatures(rotated, call) == 1
    assert valid_signatures(webhook["secret"], call) == 1

    final = (await hub.http.post(rotate, json={"keep_previous_seconds": 0}, headers=hub.owner.headers)).json()["secret"]
    await hub.api.annotate(hub.items[1], hub.owner)
    await hub.send(webhook)
    call = receiver.calls[-1]
    assert valid_signatures(final, call) == 1
    assert valid_signatures(rotated, call) == 0
    assert valid_signatures(webhook["secret"], call) == 0


async def test_the_target_is_checked_again_at_every_call(hub: Hub, receiver: Receiver) -> None:
    """A URL accepted once (here: while private targets were allowed; in life: a DNS answer that changed) is not
    called once it resolves to a private address."""
    webhook = await hub.register(receiver.url)
    await hub.api.annotate(hub.items[0], hub.owner)
    strict = hub.settings.model_copy(update={"webhook_allow_private_targets": False})
    assert await hub.send(webhook, strict) == 1
    assert receiver.calls == []
    (delivery,) = await hub.deliveries(webhook)
    assert delivery["status"] == "pending"
    assert delivery["response_status"] is None
    assert delivery["error"].startswith("refused: the host 127.0.0.1 resolves to a private")


async def test_a_paused_webhook_keeps_its_deliveries_until_resumed(hub: Hub, receiver: Receiver) -> None:
    webhook = await hub.register(receiver.url)
    url = f"{hub.hooks}/{webhook['id']}"
    assert (await hub.http.patch(url, json={"active": False}, headers=hub.owner.headers)).status_code == 200
    await hub.api.annotate(hub.items[0], hub.owner)
    assert [d["status"] for d in await hub.deliveries(webhook)] == [], "a paused webhook records nothing"
    assert (await hub.http.patch(url, json={"active": True}, headers=hub.owner.headers)).json()["active"] is True
    await hub.api.annotate(hub.items[1], hub.owner)
    assert await hub.send(webhook) == 1
    assert [d["status"] for d in await hub.deliveries(webhook)] == ["succeeded"]


async def test_a_secret_made_by_an_older_key_is_encrypted_again_with_the_current_one(
    hub: Hub, receiver: Receiver
) -> None:
    webhook = await hub.register(receiver.url)
    await hub.api.annotate(hub.items[0], hub.owner)
    newer = KeyRing((("newer", os.urandom(32)), *hub.app.state.key_ring.keys))
    assert await hub.send(webhook, key_ring=newer) == 1
    assert valid_signatures(webhook["secret"], receiver.calls[0]) == 1
    async with hub.app.state.engine.connect() as connection:
        stored = (await connection.execute(text("SELECT secret FROM webhooks"))).scalar_one()
    assert stored.startswith("enc:v1:newer:")

    await hub.api.annotate(hub.items[1], hub.owner)
    assert await hub.send(webhook, key_ring=KeyRing((("other", os.urandom(32)),))) == 1
    assert len(receiver.calls) == 1, "nothing is sent unsigned"
    pending = (await hub.deliveries(webhook))[-1]
    assert pending["status"] == "pending"
    assert pending["error"].startswith("the signing secret does not decrypt")


async def test_events_of_one_resource_arrive_in_order_through_retries(hub: Hub, receiver: Receiver) -> None:
    """Created, updated, deleted: one annotation's events reach the receiver in the order they happened, also
    when the first call fails and is retried, and each names the version it describes."""
    webhook = await hub.register(
        receiver.url, event_types=["annotation.created", "annotation.updated", "annotation.deleted"]
    )
    receiver.answers = [500]
    annotation = await hub.api.annotate(hub.items[0], hub.owner)
    url = f"/api/v1/annotations/{annotation['id']}"
    for n in range(2):
        patched = await hub.http.patch(url, json={"data": {"n": n}}, headers=hub.owner.headers)
        assert patched.status_code == 200, patched.text
    assert (await hub.http.delete(url, headers=hub.owner.headers)).status_code == 204

    assert await hub.send(webhook) == 1, "the first call fails; the later events wait behind it"
    await asyncio.sleep(RETRY_SECONDS + 0.05)
    assert await hub.send(webhook) == 4
    calls = receiver.calls[1:]
    assert [call.json["type"] for call in calls] == [
        "annotation.created",
        "annotation.updated",
        "annotation.updated",
        "annotation.deleted",
    ]
    described = [call.json["data"]["annotations"][0] for call in calls]
    assert {a["id"] for a in described} == {annotation["id"]}
    assert [a["version"] for a in described] == [1, 2, 3, 3]
    assert [a["data"] for a in described[1:]] == [{"n": 0}, {"n": 1}, {"n": 1}]
    assert all(valid_signatures(webhook["secret"], call) == 1 for call in receiver.calls)


async def test_a_redirect_is_a_failed_call_and_is_not_followed(hub: Hub, receiver: Receiver) -> None:
    webhook = await hub.register(receiver.url.replace("/hook", "/moved"))
    await hub.api.annotate(hub.items[0], hub.owner)
    assert await hub.send(webhook) == 1
    assert len(receiver.calls) == 1, "only /moved was called, never the /hook it points to"
    (delivery,) = await hub.deliveries(webhook)
    assert (delivery["status"], delivery["response_status"], delivery["error"]) == (
        "pending",
        307,
        "answered 307 (redirects are not followed)",
    )
