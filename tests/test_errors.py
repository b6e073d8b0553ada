"""Errors as the API's users see them: problem documents with stable codes, no internals, a request id on every
response, and the error reference that explains every code."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from annotation_platform.config import Settings
from annotation_platform.core.db import SessionDep
from annotation_platform.core.errors import AppError
from annotation_platform.core.routing import ApiRouter
from annotation_platform.main import create_app
from annotation_platform.models import User
from tests.conftest import PASSWORD, make_settings, problem, serve

PRIVATE_EMAIL = "-".join(("someone", "private")) + "@example.org"  # not in the source, so not in tracebacks
SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def failing_app(settings: Settings) -> FastAPI:
    """A fresh app with two routes that fail in ways the code did not foresee."""
    application = create_app(settings)
    router = ApiRouter()

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret detail")

    @router.get("/boom-sql")
    async def boom_sql(session: SessionDep) -> None:
        await session.execute(text("SELECT secret_column FROM secret_table WHERE password = 'hunter2'"))

    @router.get("/boom-sql-with-values")
    async def boom_sql_with_values(session: SessionDep) -> None:
        statement = text("SELECT missing_column FROM users WHERE email = :email")
        await session.execute(statement, {"email": PRIVATE_EMAIL})

    application.include_router(router)
    return application


async def users_in(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(select(func.count()).select_from(User))).scalar_one())


def assert_request_id(response: httpx.Response) -> str:
    request_id = response.headers["x-request-id"]
    assert SANE_REQUEST_ID.match(request_id), request_id
    if response.headers.get("content-type", "").startswith("application/problem+json"):
        assert response.json()["request_id"] == request_id
    return request_id


# --- routing errors -------------------------------------------------------------------------------------------


async def test_unknown_routes_are_not_found_problems(client: httpx.AsyncClient) -> None:
    for path in ("/api/v1/nothing-here", "/nothing-here", "/api/v2/projects", "/api/v1/projects/x/y/z"):
        body = problem(await client.get(path), 404, "not_found")
        assert body["instance"] == path
        assert body["type"] == "/errors#not_found"
        assert body["title"]
        assert body["detail"]


async def test_wrong_method_is_method_not_allowed(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/v1/projects")
    body = problem(response, 405, "method_not_allowed")
    assert body["instance"] == "/api/v1/projects"
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    assert "DELETE" not in allowed
    problem(await client.put("/health/live"), 405, "method_not_allowed")


# --- unhandled errors -----------------------------------------------------------------------------------------


async def test_unhandled_exceptions_answer_500_without_internals(settings: Settings) -> None:
    async with serve(failing_app(settings)) as http:
        for path in ("/boom", "/boom-sql"):
            response = await http.get(path, headers={"X-Request-ID": "trace-500"})
            body = problem(response, 500, "internal_error")
            assert body["instance"] == path
            assert response.headers["x-request-id"] == "trace-500"
            assert body["request_id"] == "trace-500"
            lowered = response.text.lower()
            for leak in ("secret", "traceback", "runtimeerror", "select", "hunter2", "sqlalchemy", 'file "', ".py"):
                assert leak not in lowered, (leak, response.text)
            assert set(body) <= {"type", "title", "status", "detail", "code", "instance", "request_id"}

        # The app keeps serving after a crash.
        assert (await http.get("/health/live")).status_code == 200


# --- request ids ----------------------------------------------------------------------------------------------


async def test_a_sane_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    for sent in ("abc-123", "trace.ID:42_x", "0" * 128, "f47ac10b-58cc-4372-a567-0e02b2c3d479"):
        ok = await client.get("/health/live", headers={"X-Request-ID": sent})
        assert ok.headers["x-request-id"] == sent
        missing = await client.get("/api/v1/missing", headers={"X-Request-ID": sent})
        assert missing.headers["x-request-id"] == sent
        assert problem(missing, 404, "not_found")["request_id"] == sent


async def test_a_malicious_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    for sent in ("x" * 300, "has spaces", "<script>alert(1)</script>", "a;b=c", "../../etc/passwd", "", "%0d%0a"):
        response = await client.get("/api/v1/missing", headers={"X-Request-ID": sent})
        request_id = assert_request_id(response)
        assert request_id != sent
        assert len(request_id) <= 128
        assert sent not in response.text or sent == ""


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient, settings: Settings) -> None:
    responses = [
        await client.get("/health/live"),
        await client.get("/openapi.json"),
        await client.get("/nowhere"),
        await client.get("/api/v1/users/me"),
        await client.get("/api/v1/users/me", headers={"Authorization": "Bearer not-a-token"}),
        await client.post("/api/v1/auth/register", json={}),
        await client.post("/api/v1/auth/register", content=b"{", headers={"content-type": "application/json"}),
        await client.delete("/api/v1/projects"),
    ]
    assert [response.status_code for response in responses] == [200, 200, 404, 401, 401, 422, 400, 405]
    async with serve(failing_app(settings)) as http:
        responses.append(await http.get("/boom"))
    assert responses[-1].status_code == 500
    ids = [assert_request_id(response) for response in responses]
    assert len(set(ids)) == len(ids), "each request gets its own id"


# --- bodies ---------------------------------------------------------------------------------------------------


async def test_validation_problems_do_not_echo_the_input(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register", json={"email": "not-an-email", "password": ["hunter2-secret-value"]}
    )
    body = problem(response, 422, "validation_failed")
    assert {tuple(error["loc"]) for error in body["errors"]} >= {("body", "email"), ("body", "password")}
    assert all(set(error) == {"loc", "msg", "type"} for error in body["errors"])
    assert "hunter2-secret-value" not in response.text


async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/auth/register", content=b'{"email": ', headers={"content-type": "application/json"}
    )
    problem(response, 400, "malformed_json")


async def test_a_body_over_the_limit_is_refused_with_413(
    client: httpx.AsyncClient, database_url: str, tmp_path: Path
) -> None:
    application = create_app(make_settings(database_url, tmp_path, max_request_body_bytes=1024))
    padding = " " * 2000
    async with serve(application) as http:
        big = f'{{"email": "big@example.org", "password": "{PASSWORD}"{padding}}}'.encode()
        response = await http.post(
            "/api/v1/auth/register",
            content=big,
            headers={"content-type": "application/json", "X-Request-ID": "too-big"},
        )
        body = problem(response, 413, "payload_too_large")
        assert body["request_id"] == "too-big"
        assert response.headers["x-request-id"] == "too-big"
        assert "1024" in body["detail"]

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"email": "chunked@example.org", '
            for _ in range(10):
                yield b" " * 200
            yield f'"password": "{PASSWORD}"}}'.encode()

        streamed = await http.post(
            "/api/v1/auth/register", content=chunks(), headers={"content-type": "application/json"}
        )
        problem(streamed, 413, "payload_too_large")
        assert await users_in(application.state.engine) == 0

        small = await http.post("/api/v1/auth/register", json={"email": "small@example.org", "password": PASSWORD})
        assert small.status_code == 201, small.text
        assert await users_in(application.state.engine) == 1


# --- the error reference --------------------------------------------------------------------------------------


async def test_the_error_reference_lists_every_code(client: httpx.AsyncClient) -> None:
    response = await client.get("/errors")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert len(AppError.registry) > 10
    for code, error in AppError.registry.items():
        assert f'id="{code}"' in response.text, code
        assert f"<td>{error.status}</td>" in response.text
    body = problem(await client.get("/nowhere"), 404, "not_found")
    assert body["type"].split("#")[0] == "/errors"


async def test_text_the_database_cannot_store_is_refused_not_a_server_error(api: Any) -> None:
    """NUL characters and lone surrogates are valid JSON escapes that PostgreSQL refuses to store."""
    owner = await api.user("owner")
    headers = {**owner.headers, "Content-Type": "application/json"}
    for body, status in [
        (b'{"name": "a\\u0000b"}', 422),
        (b'{"name": "ok", "settings": {"k": "a\\u0000"}}', 422),
        (b'{"name": "ok", "settings": {"a\\u0000": 1}}', 422),
        (b'{"name": "ok", "description": "x\\u0000y"}', 422),
        (b'{"name": "\\ud800"}', 400),
        (b'{"name": "ok", "settings": {"k": "\\udfff"}}', 400),
    ]:
        response = await api.client.post("/api/v1/projects", content=body, headers=headers)
        problem(response, status)
    assert (await api.client.get("/api/v1/projects", headers=owner.headers)).json()["items"] == []

    project = await api.project(owner)
    container = await api.container(project, owner)
    bulk = b'{"items": [{"external_id": "t1", "content": "fine"}, {"external_id": "t2", "content": "bad\\u0000"}]}'
    response = await api.client.post(f"/api/v1/containers/{container['id']}/items/bulk", content=bulk, headers=headers)
    problem(response, 422)
    items = await api.client.get(f"/api/v1/containers/{container['id']}/items", headers=owner.headers)
    assert items.json()["items"] == []

    login = await api.client.post("/api/v1/auth/jwt/login", data={"username": "owner\x00@example.org", "password": "x"})
    assert 400 <= login.status_code < 500, login.text


async def test_logs_carry_no_request_values(settings: Settings, caplog: pytest.LogCaptureFixture) -> None:
    """A statement that fails is logged with its SQL but without its bound values (emails, annotation text)."""
    caplog.set_level(logging.DEBUG)
    async with serve(failing_app(settings)) as http:
        problem(await http.get("/boom-sql-with-values"), 500, "internal_error")
        await http.post(
            "/api/v1/auth/jwt/login", data={"username": "someone.else@example.org", "password": "a secret password"}
        )
    logged = caplog.text
    assert "missing_column" in logged
    assert PRIVATE_EMAIL not in logged
    assert "someone.else" not in logged
    assert "a secret password" not in logged


def test_the_error_reference_document_lists_every_code() -> None:
    """docs/errors.md stays true: every code the app can emit has its `### code` entry with its status."""
    import annotation_platform.main  # noqa: F401 - imports every module, so every error class is registered

    reference = (Path(__file__).resolve().parents[1] / "docs" / "errors.md").read_text()
    for code, error in AppError.registry.items():
        entry = re.search(rf"^### {re.escape(code)}\n\n\*\*(\d{{3}})\b", reference, re.M)
        assert entry is not None, f"docs/errors.md has no entry for {code}"
        assert int(entry.group(1)) == error.status, code
