"""Building blocks for request and response schemas."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, ClassVar

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 16


class InputModel(BaseModel):
    """Request bodies: unknown fields are refused, so a typo or a privilege field never passes silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class PatchModel(InputModel):
    """PATCH bodies: an omitted field stays as it is; null is refused unless the field may be cleared."""

    nullable_fields: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_null(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.nullable_fields:
            raise ValueError("may not be null; omit the field to leave it unchanged")
        return value


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True, validate_by_alias=True)


Id = Annotated[
    uuid.UUID,
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "description": "Opaque identifier.",
            "examples": ["0193a5e2-7c1d-7b3e-9f00-2a4c6d8e0f12"],
        }
    ),
]
"""An id in a response: a UUID inside, an opaque string to clients."""

IdRef = Annotated[
    uuid.UUID,
    WithJsonSchema(
        {
            "type": "string",
            "description": "Id of a resource, as returned by the API.",
            "examples": ["0193a5e2-7c1d-7b3e-9f00-2a4c6d8e0f12"],
        }
    ),
]
"""An id a client sends in a body."""


def json_depth(value: Any) -> int:
    """How many levels of objects and arrays `value` nests (a scalar is 1); without recursion, so no input is
    too deep to measure."""
    deepest = 0
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        current, level = pending.pop()
        deepest = max(deepest, level)
        if isinstance(current, dict):
            pending.extend((child, level + 1) for child in current.values())
        elif isinstance(current, list):
            pending.extend((child, level + 1) for child in current)
    return deepest


def json_bound_problem(value: Any) -> str | None:
    """What makes a JSON value too deep or too big to store (the API's limits, which imports apply too)."""
    if json_depth(value) > MAX_JSON_DEPTH:
        return f"nested deeper than {MAX_JSON_DEPTH} levels"
    if len(orjson.dumps(value)) > MAX_JSON_BYTES:
        return f"larger than {MAX_JSON_BYTES} bytes once encoded"
    return None


def _bounded_json(value: dict[str, Any]) -> dict[str, Any]:
    if (problem := json_bound_problem(value)) is not None:
        raise ValueError(problem)
    return value


JsonObject = Annotated[dict[str, Any], AfterValidator(_bounded_json)]
"""A free-form JSON object, bounded in size and nesting so one request cannot exhaust the server."""

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=10_000)]
TypeSlug = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$"),
    Field(description="Lower-case letters, digits and underscores, starting with a letter."),
]


MAX_BULK_ROWS = 10_000


class BulkIds(InputModel):
    """The rows a bulk delete removes: all of them, or none when any is wrong."""

    ids: list[IdRef] = Field(min_length=1, max_length=MAX_BULK_ROWS, description="Up to 10,000 ids.")
