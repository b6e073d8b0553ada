from __future__ import annotations

from typing import Literal

from pydantic import Field

from annotation_platform.core.schemas import IdRef, InputModel, TypeSlug

ExportFormat = Literal["jsonl", "json", "csv"]

MEDIA_TYPES: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
}


class ExportCreate(InputModel):
    """What to export: a format and, optionally, some containers and annotation types only."""

    format: ExportFormat = Field(description="`jsonl` (one item a line), `json` (an array) or `csv` (one row an item).")
    container_ids: list[IdRef] | None = Field(
        default=None, min_length=1, max_length=1000, description="Only these containers of the project (default: all)."
    )
    annotation_types: list[TypeSlug] | None = Field(
        default=None, min_length=1, max_length=100, description="Only annotations of these types (default: all)."
    )
