"""Finishing touches on the generated OpenAPI document, applied to every operation (today's and future ones).

* The pagination parameters (`limit`, `cursor`, `include_total`) are described once, in
  `components/parameters`, and referenced by every list operation. FastAPI writes each dependency's query
  parameters inline, so identical copies are folded into the shared component afterwards.
* Every JSON request body and JSON success response gets an `example`, built from the schema: the model's own
  `examples` first, then each field's `examples`, `default`, first `enum` value or a value fitting its format.
  tests/test_openapi.py validates every example against its schema, so a field whose type alone cannot give
  a valid example (a pattern, a length) needs `examples` written next to it.
* `itemSchema` (OpenAPI 3.2, which FastAPI writes for Server-Sent Events) becomes the extension
  `x-itemSchema`: the document says 3.1, and validators and client generators of 3.1 refuse the keyword.
* A file upload (`contentMediaType`) is also `format: binary`, which client generators (openapi-python-client)
  and Swagger UI understand as a file rather than a string.
* A deprecated operation (core/routing.py `deprecated`) states its sunset date in its description and
  documents the `Deprecation`, `Sunset` and `Link` headers of its success responses.
* Every authenticated operation (one that can answer 401) also documents 429 `rate_limited`: a caller's
  requests count against their limit, and requests without valid credentials against their address's.
"""

from __future__ import annotations

import copy
from typing import Any

from annotation_platform.core.errors import problem_responses
from annotation_platform.core.rate_limit import RateLimited
from annotation_platform.core.routing import DEPRECATED_SINCE_KEY, SUNSET_KEY

JSON = "application/json"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
MAX_EXAMPLE_DEPTH = 8
# core/pagination.py's `page_params`, by query parameter name and component name.
PAGE_PARAMETER_COMPONENTS = {"limit": "PageLimit", "cursor": "PageCursor", "include_total": "PageIncludeTotal"}

_FORMAT_EXAMPLES: dict[str, Any] = {
    "date-time": "2026-11-25T09:30:00Z",
    "date": "2026-11-25",
    "time": "09:30:00Z",
    "duration": "P1D",
    "email": "ada@example.org",
    "uuid": "0193a5e2-7c1d-7b3e-9f00-2a4c6d8e0f12",
    "uri": "https://example.org/",
    "ipvanyaddress": "192.0.2.10",
    "ipvanynetwork": "192.0.2.0/24",
    "binary": "",
    "password": "correct horse battery staple",  # nosec B105 - the example shown for password fields
}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in HTTP_METHODS
    ]


def finish_document(document: dict[str, Any]) -> dict[str, Any]:
    share_page_parameters(document)
    keep_to_openapi_3_1(document)
    mark_uploads_binary(document)
    add_examples(document)
    describe_deprecations(document)
    document_rate_limits(document)
    return document


def document_rate_limits(document: dict[str, Any]) -> None:
    limited = problem_responses(RateLimited)[RateLimited.status]
    example = limited["content"]["application/problem+json"]["examples"][RateLimited.code]
    for _path, _method, operation in operations(document):
        responses = operation.get("responses", {})
        if "401" not in responses:
            continue
        existing = responses.get("429")
        if existing is None:
            responses["429"] = {
                "description": limited["description"],
                "content": {
                    "application/problem+json": {
                        "schema": {"$ref": "#/components/schemas/Problem"},
                        "examples": {RateLimited.code: copy.deepcopy(example)},
                    }
                },
            }
            continue
        examples = existing.setdefault("content", {}).setdefault("application/problem+json", {})
        examples.setdefault("examples", {}).setdefault(RateLimited.code, copy.deepcopy(example))


DEPRECATION_HEADERS = {
    "Deprecation": "When the operation was deprecated (RFC 9745), e.g. `@1795996800`.",
    "Sunset": "The HTTP date from which the operation may be gone (RFC 8594).",
    "Link": 'Where to read what replaces it: `<url>; rel="deprecation"`.',
}


def describe_deprecations(document: dict[str, Any]) -> None:
    for _method, _path, operation in operations(document):
        if not operation.get("deprecated") or SUNSET_KEY not in operation:
            continue
        operation["description"] = (
            f"{operation.get('description', '').rstrip()}\n\n**Deprecated** since "
            f"{operation[DEPRECATED_SINCE_KEY]}; may be removed from {operation[SUNSET_KEY]} (its sunset date)."
        ).lstrip()
        for status, response in operation.get("responses", {}).items():
            if status.startswith("2"):
                headers = response.setdefault("headers", {})
                for name, description in DEPRECATION_HEADERS.items():
                    headers.setdefault(name, {"description": description, "schema": {"type": "string"}})


def share_page_parameters(document: dict[str, Any]) -> None:
    """Replaces inline copies of the pagination parameters by references to `components/parameters`."""
    shared: dict[str, Any] = document.setdefault("components", {}).setdefault("parameters", {})
    for _method, _path, operation in operations(document):
        parameters = operation.get("parameters", [])
        for index, parameter in enumerate(parameters):
            name = PAGE_PARAMETER_COMPONENTS.get(parameter.get("name", "")) if parameter.get("in") == "query" else None
            if name is None:
                continue
            known = shared.setdefault(name, parameter)
            if known == parameter:  # a list with a different meaning of `limit` keeps its own description
                parameters[index] = {"$ref": f"#/components/parameters/{name}"}


def keep_to_openapi_3_1(document: dict[str, Any]) -> None:
    for _method, _path, operation in operations(document):
        for response in operation.get("responses", {}).values():
            for media in response.get("content", {}).values():
                if "itemSchema" in media:
                    media["x-itemSchema"] = media.pop("itemSchema")


def mark_uploads_binary(document: dict[str, Any]) -> None:
    for schema in document.get("components", {}).get("schemas", {}).values():
        for field in schema.get("properties", {}).values():
            if field.get("type") == "string" and "contentMediaType" in field:
                field.setdefault("format", "binary")


def add_examples(document: dict[str, Any]) -> None:
    for _method, _path, operation in operations(document):
        bodies = [operation.get("requestBody", {}).get("content", {}).get(JSON)]
        bodies += [
            response.get("content", {}).get(JSON)
            for status, response in operation.get("responses", {}).items()
            if status.startswith("2")
        ]
        for media in bodies:
            if media and "schema" in media and "example" not in media and "examples" not in media:
                media["example"] = example_of(document, media["schema"])


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        section, name = node["$ref"].removeprefix("#/components/").split("/", 1)
        node = document["components"][section][name]
    return node


def example_of(document: dict[str, Any], node: dict[str, Any], depth: int = 0) -> Any:
    """A value of this schema; explicit examples win over anything derived from the type."""
    node = resolve(document, node)
    for keyword in ("examples", "enum"):
        if node.get(keyword):
            return copy.deepcopy(node[keyword][0])
    for keyword in ("example", "const", "default"):
        if keyword in node:
            return copy.deepcopy(node[keyword])
    if depth > MAX_EXAMPLE_DEPTH:
        return None
    for keyword in ("anyOf", "oneOf"):
        if keyword in node:
            variants = [variant for variant in node[keyword] if resolve(document, variant).get("type") != "null"]
            return example_of(document, (variants or node[keyword])[0], depth + 1)
    if "allOf" in node:
        merged: dict[str, Any] = {}
        for part in node["allOf"]:
            value = example_of(document, part, depth + 1)
            if not isinstance(value, dict):
                return value
            merged.update(value)
        return merged
    return _example_of_type(document, node, depth)


def _example_of_type(document: dict[str, Any], node: dict[str, Any], depth: int) -> Any:
    kind = node.get("type")
    if kind == "object" or "properties" in node:
        return {name: example_of(document, field, depth + 1) for name, field in node.get("properties", {}).items()}
    if kind == "array":
        item = example_of(document, node.get("items", {}), depth + 1)
        return [item] * max(1, node.get("minItems", 1))
    if kind == "string":
        return _FORMAT_EXAMPLES.get(node.get("format", ""), "string")
    if kind in ("integer", "number"):
        value = node.get("minimum", node.get("exclusiveMinimum", -1) + 1)
        return max(value, 1) if "maximum" not in node or node["maximum"] >= 1 else value
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {}
