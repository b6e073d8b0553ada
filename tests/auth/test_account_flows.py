"""Password reset and email verification end to end: the API enqueues the mail, a real worker process
delivers it (to a real SMTP server, aiosmtpd, started here on loopback; or to DATA_DIR/outbox), and the test
follows the token in it."""

from __future__ import annotations

import asyncio
import email
import re
import socket
import time
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import PASSWORD, problem
from tests.workers.test_worker import Stack, worker_stack

TOKEN = re.compile(r"(eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")
MAIL_TIMEOUT = 60.0
NEW_PASSWORD = "a completely new passphrase"


class Inbox:
    """aiosmtpd handler: keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's name
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_until(found: Any, what: str, stack: Stack) -> Any:
    deadline = time.monotonic() + MAIL_TIMEOUT
    while (result := found()) is None:
        logs = "\n".join(worker.output() for worker in stack.workers)
        assert time.monotonic() < deadline, f"no {what} after {MAIL_TIMEOUT}s\n{logs}"
        await asyncio.sleep(0.05)
    return result


def token_in(message: Message) -> str:
    body = message.get_payload(decode=True)
    assert isinstance(body, bytes)
    match = TOKEN.search(body.decode())
    assert match is not None, body
    return match.group(1)


async def mail_stack(
    backend: str, database_url: str, engine: AsyncEngine, tmp_path: Path, smtp_port: int | None
) -> AsyncIterator[Stack]:
    async with worker_stack(
        backend,
        database_url,
        engine,
        tmp_path,
        smtp_host="127.0.0.1" if smtp_port else None,
        smtp_port=smtp_port or 587,
    ) as running:
        yield running


@pytest.fixture
def inbox() -> Any:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
async def smtp_stack(
    backend: str, database_url: str, engine: AsyncEngine, tmp_path: Path, inbox: Any
) -> AsyncIterator[Stack]:
    async for stack in mail_stack(backend, database_url, engine, tmp_path, inbox[1]):
        yield stack


@pytest.fixture
async def outbox_stack(backend: str, database_url: str, engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[Stack]:
    async for stack in mail_stack(backend, database_url, engine, tmp_path, None):
        yield stack


async def test_a_password_reset_by_mail_ends_every_session(smtp_stack: Stack, inbox: Any) -> None:
    stack, http = smtp_stack, smtp_stack.http
    received: Inbox = inbox[0]
    stack.start_worker()
    ana = await stack.api.user("ana")
    login = await http.post("/api/v1/auth/jwt/login", data={"username": ana.email, "password": PASSWORD})
    phone = {"Authorization": f"Bearer {login.json()['access_token']}"}

    assert (await http.post("/api/v1/auth/forgot-password", json={"email": "nobody@example.org"})).status_code == 202
    asked = await http.post("/api/v1/auth/forgot-password", json={"email": "ANA@example.org"})
    assert asked.status_code == 202
    message = await wait_until(lambda: received.messages[0] if received.messages else None, "mail", stack)
    assert message["To"] == ana.email
    assert message["Subject"] == "Reset your annotation-platform password"
    token = token_in(message)

    weak = await http.post("/api/v1/auth/reset-password", json={"token": token, "password": "password"})
    problem(weak, 422, "invalid_password")
    reset = await http.post("/api/v1/auth/reset-password", json={"token": token, "password": NEW_PASSWORD})
    assert reset.status_code == 204, reset.text
    for headers in (ana.headers, phone):
        problem(await http.get("/api/v1/users/me", headers=headers), 401)
    old = await http.post("/api/v1/auth/jwt/login", data={"username": ana.email, "password": PASSWORD})
    problem(old, 400, "invalid_credentials")
    new = await http.post("/api/v1/auth/jwt/login", data={"username": ana.email, "password": NEW_PASSWORD})
    assert new.status_code == 200
    again = await http.post("/api/v1/auth/reset-password", json={"token": token, "password": "yet another passphrase"})
    problem(again, 400, "reset_token_invalid")
    assert len(received.messages) == 1  # nothing was sent for the unknown address


async def test_email_verification_through_the_outbox(outbox_stack: Stack) -> None:
    stack, http = outbox_stack, outbox_stack.http
    stack.start_worker()
    ana = await stack.api.user("ana")
    asked = await http.post("/api/v1/auth/request-verify-token", json={"email": ana.email})
    assert asked.status_code == 202
    outbox = stack.settings.data_dir / "outbox"

    def written() -> Path | None:
        files = sorted(outbox.glob("*.eml")) if outbox.exists() else []
        return files[0] if files else None

    path = await wait_until(written, "file in DATA_DIR/outbox", stack)
    message = email.message_from_bytes(path.read_bytes())
    assert message["To"] == ana.email
    verified = await http.post("/api/v1/auth/verify", json={"token": token_in(message)})
    assert verified.status_code == 200, verified.text
    assert verified.json()["is_verified"] is True
    me = await http.get("/api/v1/users/me", headers=ana.headers)
    assert me.json()["is_verified"] is True
    problem(await http.post("/api/v1/auth/verify", json={"token": token_in(message)}), 409, "already_verified")


async def test_bad_tokens_are_refused(client: Any) -> None:
    problem(await client.post("/api/v1/auth/verify", json={"token": "not.a.token"}), 400, "verify_token_invalid")
    problem(
        await client.post("/api/v1/auth/reset-password", json={"token": "x.y.z", "password": NEW_PASSWORD}),
        400,
        "reset_token_invalid",
    )
    problem(await client.post("/api/v1/auth/forgot-password", json={"email": "not an email"}), 422)
    problem(await client.post("/api/v1/auth/forgot-password", json={"email": "a@example.org", "x": 1}), 422)
