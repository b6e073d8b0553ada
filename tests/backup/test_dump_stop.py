"""A dump asked to stop ends without a file, on both backends (the cancel of a running backup job)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from annotation_platform.backup import dump
from annotation_platform.config import Settings


@pytest.mark.usefixtures("client")
def test_a_stopped_dump_raises_and_leaves_no_file(settings: Settings, tmp_path: Path) -> None:
    stop = threading.Event()
    stop.set()
    destination = tmp_path / "stopped.dump"

    with pytest.raises(dump.DumpCancelled):
        dump.dump(dump.database_of(settings), destination, stop=stop)

    assert not destination.exists()


@pytest.mark.usefixtures("client")
def test_a_dump_not_asked_to_stop_writes_the_whole_file(settings: Settings, tmp_path: Path) -> None:
    destination = tmp_path / "whole.dump"

    dump.dump(dump.database_of(settings), destination, stop=threading.Event())

    assert dump.format_of(destination) == dump.database_of(settings).backend
