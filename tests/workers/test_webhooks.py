"""Webhooks sent by a real worker: an annotation and a finished export reach a receiver on loopback, signed; a
receiver that keeps failing gets the webhook disabled and its creator mailed (DATA_DIR/outbox)."""

from __future__ import annotations

import asyncio
import email
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.webhook.receiver import Receiver, running_receiver, valid_signatures
from tests.workers.test_worker import Stack, worker_stack

TIMEOUT = 60.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    yield from running_receiver()


async def wait_until(found: Callable[[], Any], what: str, stack: Stack) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while not (result := found()):
        logs = "\n".join(worker.output() for worker in stack.workers)
        assert time.monotonic() < deadline, f"no {what} after {TIMEOUT}s\n{logs}"
        await asyncio.sleep(0.05)
    return result


async def test_the_worker_sends_signed_events_and_disables_a_failing_webhook(
    backend: str, database_url: str, engine: AsyncEngine, tmp_path: Path, receiver: Receiver
) -> None:
    async with worker_stack(
        backend,
        database_url,
        engine,
        tmp_path,
        webhook_allow_private_targets=True,
        webhook_max_attempts=1,
        webhook_disable_after_failures=2,
    ) as stack:
        stack.start_worker()
        api, http = stack.api, stack.http
        owner = await api.user("owner")
        project = await api.project(owner)
        items = await api.items(await api.container(project, owner), owner, 3)
        hooks = f"/api/v1/projects/{project['id']}/webhooks"
        created = await http.post(
            hooks,
            json={"url": receiver.url, "event_types": ["annotation.created", "job.finished"]},
            headers=owner.headers,
        )
        assert created.status_code == 201, created.text
        webhook = created.json()

        annotation = await api.annotate(items[0], owner)
        export = await http.post(
            f"/api/v1/projects/{project['id']}/exports", json={"format": "jsonl"}, headers=owner.headers
        )
        assert export.status_code == 202, export.text
        await wait_until(lambda: len(receiver.calls) >= 2, "webhook calls", stack)
        first, finished = receiver.calls[:2]
        assert first.json["type"] == "annotation.created"
        assert first.json["data"]["annotations"][0]["id"] == annotation["id"]
        assert finished.json["type"] == "job.finished"
        assert finished.json["data"]["job"]["id"] == export.json()["id"]
        assert finished.json["data"]["job"]["status"] == "succeeded"
        assert all(valid_signatures(webhook["secret"], call) == 1 for call in receiver.calls)

        receiver.always = 500
        await api.annotate(items[1], owner)
        await api.annotate(items[2], owner)

        async def state() -> dict[str, Any]:
            return dict((await http.get(f"{hooks}/{webhook['id']}", headers=owner.headers)).json())

        deadline = time.monotonic() + TIMEOUT
        while (current := await state())["active"]:
            assert time.monotonic() < deadline, f"still active: {current}"
            await asyncio.sleep(0.05)
        assert current["consecutive_failures"] == 2
        assert current["disabled_reason"].startswith("2 consecutive failed calls")
        deliveries = (await http.get(f"{hooks}/{webhook['id']}/deliveries", headers=owner.headers)).json()["items"]
        assert [(d["status"], d["response_status"]) for d in deliveries] == [
            ("succeeded", 204),
            ("succeeded", 204),
            ("failed", 500),
            ("failed", 500),
        ]

        outbox = stack.settings.data_dir / "outbox"

        def mails() -> list[Any]:
            found = [email.message_from_bytes(path.read_bytes()) for path in outbox.glob("*.eml")]
            return [mail for mail in found if mail["Subject"] == "[annotation-platform] webhook disabled"]

        (mail,) = await wait_until(mails, "the owner's mail", stack)
        assert mail["To"] == owner.email
        assert receiver.url in mail.get_payload(decode=True).decode()


async def test_a_webhook_whose_creator_left_the_project_is_disabled_and_its_owners_told(
    backend: str, database_url: str, engine: AsyncEngine, tmp_path: Path, receiver: Receiver
) -> None:
    """The manager who registered the webhook has left the project: the project's owner hears of it, and the
    former manager learns nothing more about the project."""
    async with worker_stack(
        backend,
        database_url,
        engine,
        tmp_path,
        webhook_allow_private_targets=True,
        webhook_max_attempts=1,
        webhook_disable_after_failures=1,
    ) as stack:
        stack.start_worker()
        api, http = stack.api, stack.http
        owner, manager = await api.user("owner"), await api.user("manager")
        project = await api.project(owner)
        await api.add_member(project, owner, manager, "manager")
        items = await api.items(await api.container(project, owner), owner, 1)
        hooks = f"/api/v1/projects/{project['id']}/webhooks"
        created = await http.post(
            hooks, json={"url": receiver.url, "event_types": ["annotation.created"]}, headers=manager.headers
        )
        assert created.status_code == 201, created.text
        left = await http.delete(f"/api/v1/projects/{project['id']}/members/{manager.id}", headers=owner.headers)
        assert left.status_code == 204, left.text

        receiver.always = 500
        await api.annotate(items[0], owner)
        outbox = stack.settings.data_dir / "outbox"

        def mails() -> list[Any]:
            found = [email.message_from_bytes(path.read_bytes()) for path in outbox.glob("*.eml")]
            return [mail for mail in found if mail["Subject"] == "[annotation-platform] webhook disabled"]

        (mail,) = await wait_until(mails, "the owner's mail", stack)
        assert mail["To"] == owner.email
        hook = (await http.get(f"{hooks}/{created.json()['id']}", headers=owner.headers)).json()
        assert hook["active"] is False
        await asyncio.sleep(0.5)
        assert [mail["To"] for mail in mails()] == [owner.email]
