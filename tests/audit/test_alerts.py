"""Alerts on security events, sent by a real worker: a signed webhook call (to a receiver started here on
loopback) and a mail to every superuser (into DATA_DIR/outbox)."""

from __future__ import annotations

import asyncio
import email
import hashlib
import hmac
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.workers.test_worker import Stack, worker_stack

TIMEOUT = 60.0


class Receiver:
    """An HTTP server that records the webhook calls it gets."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.calls: list[tuple[dict[str, str], bytes]] = []

        async def hook(request: Request) -> Response:
            self.calls.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.thread.start()
    deadline = time.monotonic() + 10
    while not running.server.started:
        assert time.monotonic() < deadline, "the webhook receiver did not start"
        time.sleep(0.01)
    yield running
    running.server.should_exit = True
    running.thread.join(timeout=10)


@pytest.fixture
async def alert_stack(
    backend: str, database_url: str, engine: AsyncEngine, tmp_path: Path, receiver: Receiver
) -> AsyncIterator[Stack]:
    async with worker_stack(
        backend,
        database_url,
        engine,
        tmp_path,
        security_alert_emails=True,
        security_alert_webhook_url=receiver.url,
        login_lockout_attempts=2,
    ) as running:
        yield running


async def wait_until(found: Any, what: str, stack: Stack) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while not (result := found()):
        logs = "\n".join(worker.output() for worker in stack.workers)
        assert time.monotonic() < deadline, f"no {what} after {TIMEOUT}s\n{logs}"
        await asyncio.sleep(0.05)
    return result


async def test_security_events_reach_the_webhook_and_the_superusers(alert_stack: Stack, receiver: Receiver) -> None:
    stack, http = alert_stack, alert_stack.http
    stack.start_worker()
    root = await stack.api.user("root", superuser=True)
    ana = await stack.api.user("ana")
    created = await http.post("/api/v1/api-keys", json={"name": "nightly", "scopes": ["read"]}, headers=ana.headers)
    assert created.status_code == 201
    for _ in range(2):
        wrong = await http.post("/api/v1/auth/jwt/login", data={"username": ana.email, "password": "wrong one!"})
        assert wrong.status_code == 400

    def actions() -> set[str]:
        return {orjson.loads(body)["action"] for _headers, body in receiver.calls}

    await wait_until(lambda: {"api_key.create", "auth.login_locked"} <= actions(), "webhook calls", stack)
    secret = stack.settings.resolved_secret_key()
    for headers, body in receiver.calls:
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-signature-sha256"] == expected
        assert created.json()["key"] not in body.decode()
    key_event = next(
        orjson.loads(body) for _h, body in receiver.calls if orjson.loads(body)["action"] == "api_key.create"
    )
    assert key_event["actor_user_id"] == ana.id

    outbox = stack.settings.data_dir / "outbox"

    def mails() -> list[Any]:
        return [email.message_from_bytes(path.read_bytes()) for path in outbox.glob("*.eml")] if outbox.exists() else []

    found = await wait_until(lambda: len(mails()) >= 2 and mails(), "alert mails", stack)
    assert {message["To"] for message in found} == {root.email}
    assert {message["Subject"] for message in found} >= {
        "[annotation-platform] security event: api_key.create",
        "[annotation-platform] security event: auth.login_locked",
    }
