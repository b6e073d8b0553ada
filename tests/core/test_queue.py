"""The embedded broker (no REDIS_URL): messages are files in DATA_DIR, and a worker never reads one half-written."""

from __future__ import annotations

import os
from pathlib import Path
from queue import Empty
from typing import Any

import pytest

from annotation_platform.core.queue import AtomicFilesystemTransport, create_celery
from tests.conftest import make_settings


def test_a_message_file_is_whole_or_absent_to_a_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kombu's own channel creates the file, then writes it: a worker polling in between took it empty and died
    on the JSON. Here the reader, polling at the moment before the message takes its name, finds nothing; after,
    the whole message."""
    app = create_celery(make_settings("sqlite+aiosqlite://", tmp_path))
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        assert isinstance(connection.transport, AtomicFilesystemTransport)
        seen_midway: list[Any] = []
        replace = os.replace

        def poll_then_replace(source: str, target: str) -> None:
            try:
                seen_midway.append(channel._get("jobs"))
            except Empty:
                seen_midway.append(None)
            replace(source, target)

        monkeypatch.setattr(os, "replace", poll_then_replace)
        channel._put("jobs", {"body": "work", "properties": {}})
        monkeypatch.setattr(os, "replace", replace)

        assert seen_midway == [None]
        assert channel._get("jobs") == {"body": "work", "properties": {}}
        with pytest.raises(Empty):
            channel._get("jobs")
