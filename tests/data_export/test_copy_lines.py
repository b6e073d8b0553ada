"""Cutting a binary COPY stream into lines, wherever the server's chunks happen to end."""

from __future__ import annotations

import struct

from annotation_platform.data_export.repository import CopyLines

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def binary_copy(rows: list[tuple[bytes, int]], extension: bytes = b"") -> bytes:
    """What PostgreSQL sends for `COPY (SELECT line, annotations) TO STDOUT (FORMAT binary)`."""
    out = SIGNATURE + struct.pack(">ii", 0, len(extension)) + extension
    for line, count in rows:
        out += struct.pack(">hi", 2, len(line)) + line + struct.pack(">iq", 8, count)
    return out + struct.pack(">h", -1)


ROWS = [
    (b'{"content": "line\\nbreak", "x": "\\\\"}', 2),
    (b"", 0),
    ('"She said ""no"",\r\nthen left: ação, 東京"'.encode(), 7),
    (b"x" * 70_000, 1),
]


def test_rows_split_at_every_possible_place_come_out_whole() -> None:
    stream = binary_copy(ROWS, extension=b"\x00\x01")
    for size in (1, 2, 5, 19, 64, 65_536):
        cutter = CopyLines()
        lines: list[bytes] = []
        for start in range(0, len(stream), size):
            lines += cutter.feed(stream[start : start + size])
        assert lines == [line for line, _ in ROWS], size
        assert cutter.annotations == 10
        assert cutter.pending == b""


def test_an_empty_result_has_no_lines() -> None:
    cutter = CopyLines()
    assert cutter.feed(binary_copy([])) == []
    assert cutter.annotations == 0
