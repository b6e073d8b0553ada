"""docs/api-versioning.md: the committed openapi.json, the breaking-change check, and deprecated operations."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from datetime import date
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Response

from annotation_platform.core.openapi_changes import (
    COMMITTED_DOCUMENT,
    breaking_changes,
    declared_breaks,
    live_document,
    main,
    undeclared_breaks,
)
from annotation_platform.core.routing import ApiRoute, deprecated
from annotation_platform.main import create_app
from tests.conftest import make_settings

SINCE, SUNSET = date(2026, 12, 1), date(2027, 6, 1)


@pytest.fixture(scope="module")
def live() -> dict[str, Any]:
    return live_document()


def test_the_committed_document_is_the_live_one(live: dict[str, Any]) -> None:
    committed = json.loads(COMMITTED_DOCUMENT.read_text())
    breaks = undeclared_breaks(committed, live, declared_breaks())
    assert breaks == [], "undeclared breaking changes (docs/api-versioning.md): declare them or undo them"
    assert committed == live, "openapi.json is out of date: run `make openapi` and commit it"


def test_every_declared_break_gives_a_reason() -> None:
    assert all(reason.strip() for reason in declared_breaks().values())


def test_the_command_refuses_an_undeclared_break_and_writes_nothing(
    live: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = copy.deepcopy(live)
    base["paths"]["/api/v1/gone"] = {"get": {"operationId": "getGone", "responses": {"200": {"description": "ok"}}}}
    (tmp_path / "base.json").write_text(json.dumps(base))
    before = COMMITTED_DOCUMENT.read_text()
    assert main(["--check", "--base", str(tmp_path / "base.json")]) == 1
    assert "undeclared breaking change: removed operation: GET /api/v1/gone" in capsys.readouterr().err
    assert COMMITTED_DOCUMENT.read_text() == before


def document(paths: dict[str, Any], schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas or {}},
    }


def operation(
    *, parameters: list[dict[str, Any]] | None = None, body: str | None = None, returns: str = "Thing"
) -> dict[str, Any]:
    found: dict[str, Any] = {
        "parameters": parameters or [],
        "responses": {
            "200": {
                "description": "ok",
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{returns}"}}},
            },
            "404": {"description": "no"},
        },
    }
    if body:
        found["requestBody"] = {"content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    return found


THING = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "string"},
        "status": {"$ref": "#/components/schemas/Status"},
        "owner": {"type": "object", "properties": {"name": {"type": "string"}, "email": {"type": "string"}}},
        "tags": {"type": "array", "items": {"type": "object", "properties": {"label": {"type": "string"}}}},
    },
}
STATUS = {"type": "string", "enum": ["open", "closed"]}
THING_CREATE = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": {"type": "string"}, "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}},
}
LIMIT = {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer"}}


def before_document() -> dict[str, Any]:
    return document(
        {
            "/things": {"get": operation(parameters=[LIMIT]), "post": operation(body="ThingCreate")},
            "/things/{id}": {
                "get": operation(
                    parameters=[
                        {"name": "id", "in": "path", "required": True},
                        {
                            "name": "view",
                            "in": "query",
                            "schema": {"anyOf": [{"enum": ["short", "full"]}, {"type": "null"}]},
                        },
                    ]
                )
            },
        },
        {"Thing": THING, "Status": STATUS, "ThingCreate": THING_CREATE},
    )


def test_additions_are_not_breaking() -> None:
    before = before_document()
    after = copy.deepcopy(before)
    after["paths"]["/others"] = {"get": operation()}
    after["paths"]["/things"]["get"]["parameters"].append({"name": "q", "in": "query", "required": False})
    after["components"]["schemas"]["Thing"]["properties"]["size"] = {"type": "integer"}
    after["components"]["schemas"]["Status"]["enum"].append("archived")
    after["components"]["schemas"]["ThingCreate"]["properties"]["colour"] = {"type": "string"}
    after["components"]["schemas"]["ThingCreate"]["properties"]["extra"] = {
        "type": "object",
        "required": ["inside"],  # a required field of a new, optional object: no existing client sends the object
        "properties": {"inside": {"type": "string"}},
    }
    assert breaking_changes(before, after) == []
    assert breaking_changes(before, copy.deepcopy(before)) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["paths"].pop("/things/{id}"), "removed operation: GET /things/{id}"),
        (lambda d: d["paths"]["/things"].pop("post"), "removed operation: POST /things"),
        (
            lambda d: d["components"]["schemas"]["Thing"]["properties"].pop("id"),
            "removed response field: GET /things 200 id",
        ),
        (
            lambda d: d["components"]["schemas"]["Thing"]["properties"]["owner"]["properties"].pop("email"),
            "removed response field: GET /things 200 owner.email",
        ),
        (
            lambda d: d["components"]["schemas"]["Thing"]["properties"]["tags"]["items"]["properties"].pop("label"),
            "removed response field: GET /things 200 tags[].label",
        ),
        (
            lambda d: d["components"]["schemas"]["Status"]["enum"].remove("closed"),
            'removed enum value: Status "closed"',
        ),
        (
            lambda d: d["paths"]["/things"]["get"]["parameters"].append({"name": "q", "in": "query", "required": True}),
            "new required parameter: GET /things query q",
        ),
        (
            lambda d: d["paths"]["/things"]["get"]["parameters"][0].update(required=True),
            "new required parameter: GET /things query limit",
        ),
        (
            lambda d: d["paths"]["/things"]["get"]["parameters"].append(
                {"name": "X-Tenant", "in": "header", "required": True}
            ),
            "new required parameter: GET /things header X-Tenant",
        ),
        (
            lambda d: d["paths"]["/things/{id}"]["get"]["parameters"][1]["schema"]["anyOf"][0]["enum"].remove("full"),
            'removed enum value: GET /things/{id} query view "full"',
        ),
        (
            lambda d: d["components"]["schemas"]["ThingCreate"]["required"].append("note"),
            "new required request field: POST /things note",
        ),
        (
            lambda d: (
                d["components"]["schemas"]["ThingCreate"]["properties"].update(colour={"type": "string"}),
                d["components"]["schemas"]["ThingCreate"]["required"].append("colour"),
            ),
            "new required request field: POST /things colour",
        ),
    ],
)
def test_each_kind_of_break_is_found(change: Any, expected: str) -> None:
    before = before_document()
    after = copy.deepcopy(before)
    change(after)
    found = breaking_changes(before, after)
    assert expected in found
    assert undeclared_breaks(before, after, {expected: "on purpose"}) == [item for item in found if item != expected]


def test_declarations_are_read_from_toml(tmp_path: Path) -> None:
    declarations = tmp_path / "breaks.toml"
    declarations.write_text(
        '[[breaking]]\nchange = "removed operation: GET /things/{id}"\nreason = "Sunset 2027-06-01."\n'
    )
    assert declared_breaks(declarations) == {"removed operation: GET /things/{id}": "Sunset 2027-06-01."}
    assert declared_breaks(tmp_path / "absent.toml") == {}


@pytest.fixture(scope="module")
async def deprecating_app(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FastAPI]:
    """An app with a test-only deprecated operation (no real one is deprecated yet)."""
    data = tmp_path_factory.mktemp("deprecation")
    application = create_app(make_settings(f"sqlite+aiosqlite:///{data / 'unused.db'}", data))
    router = APIRouter(prefix="/api/v1", tags=["health"], route_class=ApiRoute)

    @router.get("/old-thing", operation_id="getOldThing", **deprecated(since=SINCE, sunset=SUNSET))
    async def old_thing(response: Response) -> dict[str, str]:
        """A test-only operation on its way out."""
        response.headers["Link"] = '</api/v1/old-thing?cursor=x>; rel="next"'
        return {"use": "/api/v1/new-thing"}

    application.include_router(router)
    yield application
    await application.state.engine.dispose()


async def test_a_deprecated_operation_is_marked_in_the_document_and_answers_with_sunset_headers(
    deprecating_app: FastAPI,
) -> None:
    transport = httpx.ASGITransport(app=deprecating_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/api/v1/old-thing")
        schema = (await http.get("/openapi.json")).json()
    assert response.status_code == 200
    assert response.headers["Deprecation"] == "@1796083200"  # 2026-12-01T00:00:00Z, an RFC 9745 date
    assert parsedate_to_datetime(response.headers["Sunset"]).date() == SUNSET
    assert response.headers["Sunset"] == "Tue, 01 Jun 2027 00:00:00 GMT"
    links = [link.strip() for link in response.headers["Link"].split(",")]
    assert links == ['</api/v1/old-thing?cursor=x>; rel="next"', '</docs>; rel="deprecation"; type="text/html"']

    documented = schema["paths"]["/api/v1/old-thing"]["get"]
    assert documented["deprecated"] is True
    assert "2027-06-01" in documented["description"]
    assert {"Deprecation", "Sunset", "Link"} <= set(documented["responses"]["200"]["headers"])
    assert (documented["x-deprecated-since"], documented["x-sunset"]) == ("2026-12-01", "2027-06-01")
    # Nothing else in the document is deprecated, and their answers carry no such headers.
    assert [path for path, item in schema["paths"].items() for op in item.values() if op.get("deprecated")] == [
        "/api/v1/old-thing"
    ]


async def test_an_operation_that_is_not_deprecated_sends_no_deprecation_headers(deprecating_app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=deprecating_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/health/live")
    assert response.status_code == 200
    assert "Deprecation" not in response.headers
    assert "Sunset" not in response.headers


def test_a_sunset_must_follow_the_deprecation() -> None:
    with pytest.raises(ValueError, match="sunset"):
        deprecated(since=SUNSET, sunset=SINCE)
