"""Identifiers: UUIDv7, so that ordering by id is creation order and index inserts stay local."""

from __future__ import annotations

import os
import threading
import time
import uuid

from annotation_platform.core.errors import NotFound

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562, version 7) that is monotonic within this process.

    The 12-bit `rand_a` field holds a counter that restarts at a random value every millisecond, so ids
    made in the same millisecond still sort in the order they were made.
    """
    global _last_ms, _counter
    with _lock:
        now_ms = time.time_ns() // 1_000_000
        if now_ms > _last_ms:
            _last_ms = now_ms
            _counter = int.from_bytes(os.urandom(2), "big") & 0x7FF
        else:
            _counter += 1
            if _counter > 0xFFF:
                _last_ms += 1
                _counter = 0
        ms, counter = _last_ms, _counter
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def parse_uuid(value: str) -> uuid.UUID | None:
    """The UUID a client sent, or None when it is not one (callers answer 404, ids being opaque)."""
    if len(value) > 64:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def path_id(value: str, resource: str) -> uuid.UUID:
    """The id in a path. Ids are opaque: one that cannot exist is simply not found."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise NotFound(f"No such {resource}.")
    return parsed
