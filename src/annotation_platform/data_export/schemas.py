from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from annotation_platform.core.schemas import IdRef, InputModel, TypeSlug

ExportFormat = Literal["jsonl", "json", "csv", "reply_structure"]

MEDIA_TYPES: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "reply_structure": "text/plain; charset=utf-8",
}

FILE_EXTENSIONS: dict[str, str] = {"reply_structure": "txt"}
"""A format's file extension where it is not the format's name."""


class ExportCreate(InputModel):
    """What to export: a format and, optionally, some containers and annotation types only."""

    format: ExportFormat = Field(
        description="`jsonl` (one item a line), `json` (an array), `csv` (one row an item) or `reply_structure` "
        "(the IRC disentanglement corpus's links: one line a message)."
    )
    container_ids: list[IdRef] | None = Field(
        default=None, min_length=1, max_length=1000, description="Only these containers of the project (default: all)."
    )
    annotation_types: list[TypeSlug] | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Only annotations of these types (default: all).",
        examples=[["thread"]],
    )
    annotator: str | None = Field(
        default=None,
        min_length=1,
        max_length=320,
        description="`reply_structure` only: whose `thread` labels link the messages (a username, or `gold`); "
        "omitted, each message links to the item it replies to (`parent`).",
        examples=["ada"],
    )

    @model_validator(mode="after")
    def _annotator_for_reply_structure(self) -> ExportCreate:
        if self.annotator is not None and self.format != "reply_structure":
            raise ValueError("`annotator` applies to the `reply_structure` format only")
        return self
