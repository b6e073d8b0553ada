"""Breaking changes between two OpenAPI documents, and the committed `openapi.json` they are checked against.

A change breaks an existing client when it removes an operation, a response field or an enum value, or when it
adds a required parameter or a required request field (or makes an optional one required). Each break has a
stable description, e.g. `removed operation: GET /api/v1/projects`; a break made on purpose is declared with
that description and a reason in `openapi-breaking-changes.toml` (docs/api-versioning.md).

`python -m annotation_platform.core.openapi_changes` (`make openapi`) writes the live document to
`openapi.json`, refusing while it differs from the committed one by an undeclared break; `--check` writes
nothing and fails when the live document differs at all; `--base FILE` compares against another document.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from annotation_platform.core.openapi import operations, resolve

REPO = Path(__file__).resolve().parents[3]
COMMITTED_DOCUMENT = REPO / "openapi.json"
DECLARED_BREAKS = REPO / "openapi-breaking-changes.toml"
JSON = "application/json"
MAX_DEPTH = 8


def breaking_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Every change from `before` to `after` that can break a client written against `before`."""
    changes: list[str] = []
    after_operations = {(method, path): operation for method, path, operation in operations(after)}
    for method, path, old in operations(before):
        where = f"{method.upper()} {path}"
        new = after_operations.get((method, path))
        if new is None:
            changes.append(f"removed operation: {where}")
            continue
        changes += _parameter_changes(before, old, after, new, where)
        changes += _request_changes(before, old, after, new, where)
        changes += _response_changes(before, old, after, new, where)
    changes += _enum_changes(before, after)
    return sorted(set(changes))


def _parameters(document: dict[str, Any], operation: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    resolved = (resolve(document, parameter) for parameter in operation.get("parameters", []))
    return {(parameter["in"], parameter["name"]): parameter for parameter in resolved}


def _parameter_changes(
    before: dict[str, Any], old: dict[str, Any], after: dict[str, Any], new: dict[str, Any], where: str
) -> Iterator[str]:
    old_parameters = _parameters(before, old)
    for (location, name), parameter in _parameters(after, new).items():
        known = old_parameters.get((location, name))
        if parameter.get("required") and not (known and known.get("required")):
            yield f"new required parameter: {where} {location} {name}"
        if known and "schema" in known and "schema" in parameter:
            new_values = {json.dumps(v) for _at, values in _enums_in(after, parameter["schema"], "", 0) for v in values}
            for _at, values in _enums_in(before, known["schema"], "", 0):
                for value in values:
                    if json.dumps(value) not in new_values:
                        yield f"removed enum value: {where} {location} {name} {json.dumps(value)}"


def _body_schema(operation: dict[str, Any]) -> dict[str, Any] | None:
    media = operation.get("requestBody", {}).get("content", {})
    chosen = media.get(JSON) or next(iter(media.values()), None)
    return chosen.get("schema") if chosen else None


def _fields(
    document: dict[str, Any], schema: dict[str, Any] | None, prefix: str = "", depth: int = 0
) -> dict[str, bool]:
    """Every field path of a schema (`a.b`, `items[].c`) and whether it is required where it sits."""
    if schema is None or depth > MAX_DEPTH:
        return {}
    node = resolve(document, schema)
    for keyword in ("anyOf", "oneOf", "allOf"):
        if keyword in node:
            merged: dict[str, bool] = {}
            for variant in node[keyword]:
                for name, is_required in _fields(document, variant, prefix, depth + 1).items():
                    merged[name] = merged.get(name, False) or is_required
            return merged
    if node.get("type") == "array":
        return _fields(document, node.get("items"), f"{prefix}[]", depth + 1)
    fields: dict[str, bool] = {}
    required = set(node.get("required", []))
    for name, child in node.get("properties", {}).items():
        path = f"{prefix}.{name}" if prefix else name
        fields[path] = name in required
        fields.update(_fields(document, child, path, depth + 1))
    return fields


def _request_changes(
    before: dict[str, Any], old: dict[str, Any], after: dict[str, Any], new: dict[str, Any], where: str
) -> Iterator[str]:
    if new.get("requestBody", {}).get("required") and "requestBody" not in old:
        yield f"new required request body: {where}"
    old_fields = _fields(before, _body_schema(old))
    for path, required in _fields(after, _body_schema(new)).items():
        parent = path.rpartition(".")[0]
        # A required field inside a new optional object is new to every client: only fields of known objects count.
        if required and not old_fields.get(path, False) and (not parent or parent in old_fields):
            yield f"new required request field: {where} {path}"


def _response_changes(
    before: dict[str, Any], old: dict[str, Any], after: dict[str, Any], new: dict[str, Any], where: str
) -> Iterator[str]:
    for status, response in old.get("responses", {}).items():
        if not status.startswith("2"):
            continue
        new_response = new.get("responses", {}).get(status)
        if new_response is None:
            yield f"removed response: {where} {status}"
            continue
        old_schema = response.get("content", {}).get(JSON, {}).get("schema")
        new_schema = new_response.get("content", {}).get(JSON, {}).get("schema")
        new_fields = _fields(after, new_schema)
        for path in _fields(before, old_schema):
            if path not in new_fields:
                yield f"removed response field: {where} {status} {path}"


def _enums(document: dict[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    for name, schema in document.get("components", {}).get("schemas", {}).items():
        yield from _enums_in(document, schema, name, 0)


def _enums_in(
    document: dict[str, Any], node: dict[str, Any], where: str, depth: int
) -> Iterator[tuple[str, list[Any]]]:
    if depth > MAX_DEPTH or "$ref" in node:
        return
    if "enum" in node:
        yield where, node["enum"]
    for keyword in ("anyOf", "oneOf", "allOf"):
        for variant in node.get(keyword, []):
            yield from _enums_in(document, variant, where, depth + 1)
    if "items" in node:
        yield from _enums_in(document, node["items"], f"{where}[]", depth + 1)
    for name, child in node.get("properties", {}).items():
        yield from _enums_in(document, child, f"{where}.{name}", depth + 1)


def _enum_changes(before: dict[str, Any], after: dict[str, Any]) -> Iterator[str]:
    new_enums: dict[str, set[Any]] = {}
    for where, values in _enums(after):
        new_enums.setdefault(where, set()).update(json.dumps(value) for value in values)
    for where, values in _enums(before):
        if where in new_enums:
            for value in values:
                if json.dumps(value) not in new_enums[where]:
                    yield f"removed enum value: {where} {json.dumps(value)}"


def declared_breaks(path: Path = DECLARED_BREAKS) -> dict[str, str]:
    """The breaks declared on purpose: their description and why."""
    entries = tomllib.loads(path.read_text()).get("breaking", []) if path.exists() else []
    return {entry["change"]: entry["reason"] for entry in entries}


def undeclared_breaks(before: dict[str, Any], after: dict[str, Any], declared: dict[str, str]) -> list[str]:
    return [change for change in breaking_changes(before, after) if change not in declared]


def live_document() -> dict[str, Any]:
    from annotation_platform.config import Environment, Settings
    from annotation_platform.main import create_app

    # The document depends on the code only: nothing is connected to, and the broker folders the app creates
    # go to a temporary directory.
    with tempfile.TemporaryDirectory(prefix="openapi-") as data_dir:
        settings = Settings(
            _env_file=None,
            environment=Environment.test,
            secret_key="-".join(["openapi-document"] * 4),
            database_url="sqlite+aiosqlite://",
            redis_url=None,
            data_dir=Path(data_dir),
        )
        return create_app(settings).openapi()


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; fail if openapi.json is out of date")
    parser.add_argument("--base", type=Path, default=COMMITTED_DOCUMENT, help="the document to compare against")
    args = parser.parse_args(argv)
    live = live_document()
    base = json.loads(args.base.read_text()) if args.base.exists() else None
    breaks = undeclared_breaks(base, live, declared_breaks()) if base is not None else []
    for change in breaks:
        print(f"undeclared breaking change: {change}", file=sys.stderr)
    if breaks:
        print(f"declare each in {DECLARED_BREAKS.name} with a reason (docs/api-versioning.md)", file=sys.stderr)
        return 1
    if args.check:
        if base != live:
            print(f"{args.base} differs from the live document: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    COMMITTED_DOCUMENT.write_text(render(live))
    print(f"wrote {COMMITTED_DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
