"""Sealed files: what goes in comes out; a file cut short, with chunks reordered, or read as another file fails."""

from __future__ import annotations

import io

import pytest

from annotation_platform.core import sealed_file
from annotation_platform.core.crypto import KeyRing, generate_key_entry
from annotation_platform.core.errors import AppError
from annotation_platform.core.sealed_file import MAGIC, SealedFileTruncated, SealedReader, SealedWriter

RING = KeyRing.parse(generate_key_entry("k1"))


def _sealed(data: bytes, context: bytes = b"file:1") -> bytes:
    out = io.BytesIO()
    writer = SealedWriter(out, RING, context)
    for start in range(0, len(data), 777):
        writer.write(data[start : start + 777])
    writer.close()
    return out.getvalue()


def _read(stored: bytes, context: bytes = b"file:1") -> bytes:
    return SealedReader(io.BytesIO(stored), RING, context).read()


def test_round_trip_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealed_file, "CHUNK_BYTES", 1000)
    data = bytes(range(256)) * 40
    stored = _sealed(data)
    assert stored.startswith(MAGIC)
    assert bytes(range(256)) not in stored
    assert len(stored.splitlines()) == 1 + 11  # the header, ten full chunks and the last
    assert _read(stored) == data
    assert _read(_sealed(b"")) == b""


def test_tampering_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealed_file, "CHUNK_BYTES", 1000)
    lines = _sealed(b"x" * 3500).splitlines(keepends=True)
    with pytest.raises(SealedFileTruncated):
        _read(b"".join(lines[:-1]))
    with pytest.raises(AppError):
        _read(b"".join([lines[0], lines[2], lines[1], *lines[3:]]))
    with pytest.raises(AppError):
        _read(b"".join(lines), context=b"file:2")
