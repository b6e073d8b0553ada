from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

ImportFormat = Literal["csv", "json", "jsonl"]
OnError = Literal["abort", "skip"]


class ImportOptions(BaseModel):
    """The form fields of an import, besides the file."""

    format: ImportFormat
    mapping: str | None = Field(default=None, description="JSON object from target to source column.")
    dry_run: bool = False
    annotator: str | None = Field(default=None, max_length=320)
    encoding: str = Field(default="utf-8", max_length=40)
    on_error: OnError = "abort"
