"""The OpenAPI document generated clients are built from, and the documentation pages that must work offline."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import BaseModel

from annotation_platform.core.errors import NotAuthenticated, problem_responses
from annotation_platform.core.openapi import PAGE_PARAMETER_COMPONENTS
from annotation_platform.main import create_app
from tests.conftest import make_settings

PROBLEM = "application/problem+json"
PROBLEM_REF = "#/components/schemas/Problem"
CAMEL_CASE = re.compile(r"^[a-z][a-z0-9]*(?:[A-Z][a-z0-9]*)*$")
METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")

# API.md's tables for issue 2: auth, users, projects, members, containers, items, annotations.
EXPECTED_OPERATIONS = [
    ("post", "/api/v1/auth/register"),
    ("post", "/api/v1/auth/jwt/login"),
    ("post", "/api/v1/auth/jwt/logout"),
    ("get", "/api/v1/users/me"),
    ("patch", "/api/v1/users/me"),
    ("get", "/api/v1/users"),
    ("get", "/api/v1/users/{user_id}"),
    ("patch", "/api/v1/users/{user_id}"),
    ("delete", "/api/v1/users/{user_id}"),
    ("get", "/api/v1/projects"),
    ("post", "/api/v1/projects"),
    ("get", "/api/v1/projects/{project_id}"),
    ("patch", "/api/v1/projects/{project_id}"),
    ("delete", "/api/v1/projects/{project_id}"),
    ("get", "/api/v1/projects/{project_id}/members"),
    ("put", "/api/v1/projects/{project_id}/members/{user_id}"),
    ("delete", "/api/v1/projects/{project_id}/members/{user_id}"),
    ("get", "/api/v1/projects/{project_id}/containers"),
    ("post", "/api/v1/projects/{project_id}/containers"),
    ("get", "/api/v1/containers/{container_id}"),
    ("patch", "/api/v1/containers/{container_id}"),
    ("delete", "/api/v1/containers/{container_id}"),
    ("get", "/api/v1/containers/{container_id}/items"),
    ("post", "/api/v1/containers/{container_id}/items"),
    ("post", "/api/v1/containers/{container_id}/items/bulk"),
    ("get", "/api/v1/items/{item_id}"),
    ("patch", "/api/v1/items/{item_id}"),
    ("delete", "/api/v1/items/{item_id}"),
    ("get", "/api/v1/items/{item_id}/annotations"),
    ("post", "/api/v1/items/{item_id}/annotations"),
    ("get", "/api/v1/containers/{container_id}/annotations"),
    ("post", "/api/v1/containers/{container_id}/annotations/bulk"),
    ("get", "/api/v1/annotations/{annotation_id}"),
    ("patch", "/api/v1/annotations/{annotation_id}"),
    ("delete", "/api/v1/annotations/{annotation_id}"),
    ("post", "/api/v1/containers/{container_id}/imports"),
    ("post", "/api/v1/projects/{project_id}/exports"),
    ("get", "/api/v1/jobs"),
    ("get", "/api/v1/jobs/{job_id}"),
    ("post", "/api/v1/jobs/{job_id}/cancel"),
    ("post", "/api/v1/jobs/{job_id}/retry"),
    ("get", "/api/v1/jobs/{job_id}/errors"),
    ("get", "/api/v1/jobs/{job_id}/download"),
    ("get", "/api/v1/jobs/{job_id}/events"),
    ("get", "/api/v1/admin/backups"),
    ("post", "/api/v1/admin/backups"),
    ("get", "/api/v1/containers/{container_id}/agreement"),
    ("get", "/api/v1/projects/{project_id}/agreement"),
    ("get", "/api/v1/containers/{container_id}/disagreements"),
    ("get", "/api/v1/containers/{container_id}/gold"),
    ("post", "/api/v1/containers/{container_id}/gold"),
    ("delete", "/api/v1/containers/{container_id}/gold"),
    ("get", "/api/v1/containers/{container_id}/gold/open"),
    ("get", "/health/live"),
    ("get", "/health/ready"),
]


@pytest.fixture(scope="module")
async def docs_app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    """An app of its own: the document does not depend on the database, so these tests run once."""
    data = tmp_path_factory.mktemp("openapi")
    application = create_app(make_settings(f"sqlite+aiosqlite:///{data / 'unused.db'}", data))
    yield application
    await application.state.engine.dispose()


@pytest.fixture
async def http(docs_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=docs_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def schema(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return dict(response.json())


def api_operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        if path.startswith("/api/v1/")
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section, name = node["$ref"].removeprefix("#/components/").split("/", 1)
        node = schema["components"][section][name]
    return node


def parameters(schema: dict[str, Any], operation: dict[str, Any]) -> list[dict[str, Any]]:
    return [resolve(schema, parameter) for parameter in operation.get("parameters", [])]


async def test_the_document_loads(schema: dict[str, Any]) -> None:
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"]
    assert schema["info"]["version"]
    assert len(api_operations(schema)) >= len(EXPECTED_OPERATIONS) - 2


async def test_every_operation_in_api_md_exists(schema: dict[str, Any]) -> None:
    missing = [(method, path) for method, path in EXPECTED_OPERATIONS if method not in schema["paths"].get(path, {})]
    assert missing == []


async def test_operations_have_unique_camel_case_ids_tags_and_text(schema: dict[str, Any]) -> None:
    declared_tags = {tag["name"] for tag in schema.get("tags", [])}
    ids: list[str] = []
    for method, path, operation in api_operations(schema):
        where = f"{method.upper()} {path}"
        operation_id = operation.get("operationId", "")
        assert CAMEL_CASE.match(operation_id), (where, operation_id)
        ids.append(operation_id)
        assert operation.get("tags"), where
        assert set(operation["tags"]) <= declared_tags, (where, operation["tags"])
        assert operation.get("summary"), where
        # FastAPI derives a summary from the function name; a description has to be written by someone.
        assert operation.get("description", "").strip(), where
    duplicates = sorted({operation_id for operation_id in ids if ids.count(operation_id) > 1})
    assert duplicates == []
    assert {"createAnnotation", "listProjects"} <= set(ids)


async def test_every_error_response_is_a_problem_document(schema: dict[str, Any]) -> None:
    problem_schema = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "code", "instance"} <= set(problem_schema["required"])
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for method, path, operation in api_operations(schema):
        errors = {status: response for status, response in operation["responses"].items() if not status.startswith("2")}
        assert errors, f"{method.upper()} {path} documents no error"
        for status, response in errors.items():
            where = f"{method.upper()} {path} {status}"
            assert status.isdigit(), where
            assert response.get("description"), where
            assert set(response.get("content", {})) == {PROBLEM}, (where, response.get("content"))
            assert response["content"][PROBLEM]["schema"] == {"$ref": PROBLEM_REF}, where


async def test_the_errors_each_operation_can_answer_are_documented(schema: dict[str, Any]) -> None:
    for method, path, operation in api_operations(schema):
        where, statuses = f"{method.upper()} {path}", set(operation["responses"])
        if operation.get("security"):
            assert "401" in statuses, where
        if "{" in path:
            assert "404" in statuses, where
        if "requestBody" in operation:
            assert {"415", "422"} <= statuses, where
        if operation["operationId"].startswith("list"):
            assert {"400", "422"} <= statuses, where
    annotation = schema["paths"]["/api/v1/annotations/{annotation_id}"]
    assert "412" in annotation["patch"]["responses"]
    assert "412" in annotation["delete"]["responses"]
    assert "ETag" in annotation["get"]["responses"]["200"].get("headers", {})


async def test_list_operations_are_cursor_paginated(schema: dict[str, Any]) -> None:
    lists = 0
    for method, path, operation in api_operations(schema):
        ok = operation["responses"].get("200", {}).get("content", {}).get("application/json", {}).get("schema", {})
        returns_page = {"items", "next_cursor"} <= set(resolve(schema, ok).get("properties", {})) if ok else False
        named_list = operation["operationId"].startswith("list")
        assert returns_page == named_list, f"{method.upper()} {path}"
        if not returns_page:
            continue
        lists += 1
        query = {param["name"]: param for param in parameters(schema, operation) if param["in"] == "query"}
        assert {"limit", "cursor", "include_total"} <= set(query), f"{method.upper()} {path}"
        limit = query["limit"]["schema"]
        assert (limit.get("minimum"), limit.get("maximum"), limit.get("default")) == (1, 500, 50)
        # Described once, in components/parameters, and referenced by every list.
        references = {param.get("$ref") for param in operation["parameters"]}
        assert {f"#/components/parameters/{name}" for name in PAGE_PARAMETER_COMPONENTS.values()} <= references, (
            f"{method.upper()} {path}"
        )
    assert lists >= 7
    shared = schema["components"]["parameters"]
    assert {shared[name]["name"] for name in PAGE_PARAMETER_COMPONENTS.values()} == set(PAGE_PARAMETER_COMPONENTS)
    assert all(shared[name].get("description") for name in PAGE_PARAMETER_COMPONENTS.values())


async def test_the_document_validates_against_the_openapi_specification(schema: dict[str, Any]) -> None:
    validate(schema)


async def test_both_security_schemes_are_declared_and_offered_wherever_a_caller_must_authenticate(
    schema: dict[str, Any],
) -> None:
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearer"]["type"] == "oauth2"
    assert schemes["bearer"]["flows"]["password"]["tokenUrl"] == "/api/v1/auth/jwt/login"
    assert (schemes["apiKey"]["type"], schemes["apiKey"]["in"], schemes["apiKey"]["name"]) == (
        "apiKey",
        "header",
        "X-API-Key",
    )
    assert all(scheme.get("description") for scheme in schemes.values())


def json_bodies(operation: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, media type object) of the JSON request body and every JSON success response."""
    found = [("request", operation.get("requestBody", {}).get("content", {}).get("application/json"))]
    found += [
        (status, response.get("content", {}).get("application/json"))
        for status, response in operation["responses"].items()
        if status.startswith("2")
    ]
    return [(where, media) for where, media in found if media and media.get("schema")]


def placeholders(value: Any, at: str = "") -> list[str]:
    """Where an example holds the bare type name a schema without examples produces."""
    if value == "string":
        return [at]
    if isinstance(value, dict):
        return [found for key, child in value.items() for found in placeholders(child, f"{at}.{key}")]
    if isinstance(value, list):
        return [found for child in value for found in placeholders(child, f"{at}[]")]
    return []


def operation_problems(schema: dict[str, Any], operation: dict[str, Any]) -> list[str]:
    """What one operation lacks of the contract: security, valid examples, a sunset date."""
    problems = []
    if "401" in operation["responses"] and operation.get("security") != [{"bearer": []}, {"apiKey": []}]:
        problems.append("documents 401 but does not offer both security schemes (bearer, apiKey)")
    for where, media in json_bodies(operation):
        if "example" not in media:
            problems.append(f"{where}: no example")
            continue
        root = {**media["schema"], "components": schema["components"]}
        problems += [
            f"{where}: invalid example: {e.message}" for e in Draft202012Validator(root).iter_errors(media["example"])
        ]
        if where == "request":
            # What a reader copies must be realistic: write `examples=[...]` on the field named here.
            problems += [f"request: example needs `examples=` on {at}" for at in placeholders(media["example"])]
    if operation.get("deprecated") and not {"x-deprecated-since", "x-sunset", "x-deprecation-link"} <= set(operation):
        problems.append("deprecated without core/routing.py `deprecated(since=..., sunset=...)`")
    return problems


def health_operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in schema["paths"].items()
        if path.startswith("/health/")
        for method, operation in item.items()
        if method in METHODS
    ]


async def test_every_operation_has_security_valid_examples_and_sunset_dates_where_needed(
    schema: dict[str, Any],
) -> None:
    problems = {
        f"{method.upper()} {path}": found
        for method, path, operation in [*api_operations(schema), *health_operations(schema)]
        if (found := operation_problems(schema, operation))
    }
    assert problems == {}
    examples = sum(len(json_bodies(operation)) for _method, _path, operation in api_operations(schema))
    assert examples >= 75


class Note(BaseModel):
    text: str


async def test_an_operation_lacking_a_piece_is_caught(tmp_path: Path) -> None:
    """The checks above, on a deliberately incomplete operation added to an app of its own."""
    application = create_app(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", tmp_path))

    @application.post(
        "/api/v1/notes", operation_id="createNote", deprecated=True, responses=problem_responses(NotAuthenticated)
    )
    async def create_note(note: Note) -> Note:
        """Takes a note without asking who is calling."""
        return note

    try:
        document = application.openapi()
        problems = operation_problems(document, document["paths"]["/api/v1/notes"]["post"])
    finally:
        await application.state.engine.dispose()
    assert problems == [
        "documents 401 but does not offer both security schemes (bearer, apiKey)",
        "request: example needs `examples=` on .text",
        "deprecated without core/routing.py `deprecated(since=..., sunset=...)`",
    ]


async def test_docs_pages_use_only_local_assets(http: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await http.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        assert "/openapi.json" in html
        urls = re.findall(r"""<(?:script|link)\b[^>]*\b(?:src|href)\s*=\s*["']([^"']+)["']""", html, flags=re.I)
        assert any(url.endswith(".js") for url in urls), (page, urls)
        for url in urls:
            assert not re.match(r"^(?:[a-z]+:)?//", url, flags=re.I), (page, url)
            asset = await http.get(url)
            assert asset.status_code == 200, (page, url)
            assert asset.content
        assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", html, flags=re.I), page
        assert "cdn.jsdelivr.net" not in html
        assert "fonts.googleapis.com" not in html
    redirect = await http.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
