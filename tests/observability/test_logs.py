"""Structured logs: one JSON object a line with request id, user id, route, status and duration; and never an
e-mail address, a password or a token, whatever the code logs."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from annotation_platform.config import Settings
from annotation_platform.observability.logs import (
    JsonFormatter,
    configure_logging,
    ip_pseudonym,
    ip_pseudonym_key,
    redact,
)
from tests.conftest import PASSWORD, Api


@pytest.fixture
def log_output(settings: Settings) -> Iterator[io.StringIO]:
    """Every log line the service writes during the test, as configured in production (JSON)."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    output = io.StringIO()
    configure_logging(settings.model_copy(update={"log_format": "json", "log_level": "DEBUG"}), stream=output)
    try:
        yield output
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def lines(output: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.getvalue().splitlines() if line.strip()]


async def test_access_log_lines_carry_request_user_route_status_and_duration(
    client: httpx.AsyncClient, api: Api, log_output: io.StringIO
) -> None:
    owner = await api.user()
    project = await api.project(owner)
    response = await client.get(f"/api/v1/projects/{project['id']}", headers={**owner.headers, "X-Request-ID": "r-42"})
    assert response.status_code == 200
    access = [line for line in lines(log_output) if line["logger"] == "annotation_platform.access"]
    mine = next(line for line in access if line.get("request_id") == "r-42")
    assert mine["user_id"] == owner.id
    assert mine["route"] == "/api/v1/projects/{project_id}"
    assert mine["path"] == f"/api/v1/projects/{project['id']}"
    assert mine["status"] == 200
    assert mine["method"] == "GET"
    assert mine["duration_ms"] >= 0
    assert mine["level"] == "INFO"
    anonymous = await client.get("/health/live")
    line = next(line for line in lines(log_output) if line.get("request_id") == anonymous.headers["x-request-id"])
    assert "user_id" not in line


async def test_no_email_password_or_token_reaches_the_logs(
    client: httpx.AsyncClient, api: Api, log_output: io.StringIO
) -> None:
    """Registration, failed and successful logins, authenticated calls and errors: none leaves a secret."""
    actor = await api.user("secretive")
    await client.post("/api/v1/auth/jwt/login", data={"username": actor.email, "password": "wrong " + PASSWORD})
    await client.post("/api/v1/auth/register", json={"email": actor.email, "password": PASSWORD})
    await client.get("/api/v1/users/me", headers=actor.headers)
    await client.get("/api/v1/users/me", headers={"Authorization": "Bearer not-a-real-token-abcdef"})
    await client.get(f"/api/v1/projects?email={actor.email}&password={PASSWORD}", headers=actor.headers)
    # Code that logs carelessly is caught by the formatter too.
    careless = logging.getLogger("annotation_platform.careless")
    careless.warning("user %s logged in with password=%r, token %s", actor.email, PASSWORD, actor.token)
    careless.info("connecting to postgresql+asyncpg://app:hunter2secret@db:5432/app")
    careless.info("headers: {'authorization': 'Bearer %s'}", actor.token)
    try:
        raise ValueError(f"cannot mail {actor.email}: Bearer {actor.token}")
    except ValueError:
        careless.exception("failed")

    text = log_output.getvalue()
    assert len(lines(log_output)) >= 8
    for secret in (actor.email, PASSWORD, actor.token, "hunter2secret", "not-a-real-token-abcdef", "wrong "):
        assert secret not in text, secret
    assert "[email]" in text
    assert "[redacted]" in text


@pytest.mark.parametrize(
    ("raw", "hidden"),
    [
        ('{"password": "pa55 word!"}', "pa55 word!"),
        ("password='two words'", "two words"),
        ("secret_key=abcdefghij0123456789", "abcdefghij0123456789"),
        ("redis://:redispass@redis:6379/0", "redispass"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "eyJzdWIiOiIxIn0"),
        ("Ana.Maria+tag@mail.example.co.uk wrote", "Ana.Maria+tag@mail.example.co.uk"),
    ],
)
def test_redact(raw: str, hidden: str) -> None:
    assert hidden not in redact(raw)


def test_json_formatter_keeps_known_extras() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "job %s done", ("j1",), None)
    record.kind = "imports.run"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "job j1 done"
    assert entry["kind"] == "imports.run"


@pytest.mark.parametrize(
    "raw",
    [
        "failed login from 203.0.113.7",
        "peer 198.51.100.23:51234 closed",
        "client 2001:db8::5 refused",
        "mapped ::ffff:203.0.113.7",
    ],
)
def test_client_addresses_become_pseudonyms(raw: str) -> None:
    redacted = redact(raw)
    assert re.search(r"ip-[0-9a-f]{12}", redacted)
    for address in ("203.0.113.7", "198.51.100.23", "2001:db8::5"):
        assert address not in redacted


@pytest.mark.parametrize(
    "kept",
    ["listening on 0.0.0.0:8000", "probe from 127.0.0.1", "at 07:17:14", "mac 00:1a:2b:3c:4d:5e", "version 1.2.3"],
)
def test_what_is_not_a_client_address_stays(kept: str) -> None:
    assert redact(kept) == kept


def test_one_address_has_one_pseudonym_per_key() -> None:
    key = ip_pseudonym_key("a" * 40)
    assert ip_pseudonym("203.0.113.7", key) == ip_pseudonym("::ffff:203.0.113.7", key)
    assert ip_pseudonym("203.0.113.7", key) != ip_pseudonym("203.0.113.8", key)
    assert ip_pseudonym("203.0.113.7", key) != ip_pseudonym("203.0.113.7", ip_pseudonym_key("b" * 40))


async def test_the_access_log_names_the_client_by_its_pseudonym(
    app: Any, client: httpx.AsyncClient, settings: Settings, log_output: io.StringIO
) -> None:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as remote:
        response = await remote.get("/health/live")
    line = next(line for line in lines(log_output) if line.get("request_id") == response.headers["x-request-id"])
    assert "203.0.113.7" not in log_output.getvalue()
    assert line["client"] == ip_pseudonym("203.0.113.7", ip_pseudonym_key(settings.resolved_secret_key()))
