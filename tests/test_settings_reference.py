"""docs/deployment.md's configuration reference is the Settings class, every field, described."""

from __future__ import annotations

from annotation_platform.config import Settings
from annotation_platform.core.settings_reference import DOCUMENT, settings_table, with_table


def test_the_reference_table_in_the_guide_is_current() -> None:
    document = DOCUMENT.read_text()
    assert document == with_table(document), "docs/deployment.md's settings table is out of date: run `make docs`"


def test_every_setting_is_described_and_listed() -> None:
    table = settings_table()
    for name, field in Settings.model_fields.items():
        assert field.description, f"Settings.{name} needs a description (it becomes the guide's text)"
        assert f"| `{name.upper()}` |" in table
