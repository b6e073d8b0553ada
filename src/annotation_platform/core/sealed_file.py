"""Files of sensitive projects (exports, version snapshots) encrypted at rest, written and read as streams.

The file is a header line, then one line per chunk of at most `CHUNK_BYTES` plaintext bytes, each a key ring
token (`enc:v1:<key id>:...`). A chunk's associated data is the file's context, its index and whether it is the
last: chunks cannot be reordered, dropped, or moved to another file, and a file cut short fails to read (its
last chunk never says so). Tokens are base64, so the file is a third larger than its plaintext.
"""

from __future__ import annotations

from typing import BinaryIO

from annotation_platform.core.crypto import DecryptionError, KeyRing
from annotation_platform.core.field_crypto import decrypt_text

MAGIC = b"annotation-platform sealed file v1\n"
CHUNK_BYTES = 1024 * 1024


class SealedFileTruncated(ValueError):
    """The sealed file ends before its last chunk."""


def _chunk_context(context: bytes, index: int, last: bool) -> bytes:
    return context + b":%d:%s" % (index, b"last" if last else b"more")


def is_sealed(head: bytes) -> bool:
    return head.startswith(MAGIC)


class SealedWriter:
    """A write-only file that encrypts what passes through it into `target`; `close()` writes the last chunk."""

    def __init__(self, target: BinaryIO, key_ring: KeyRing, context: bytes) -> None:
        self.target = target
        self.key_ring = key_ring
        self.context = context
        self.buffer = bytearray()
        self.index = 0
        self.closed = False
        target.write(MAGIC)

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) > CHUNK_BYTES:
            self._emit(bytes(self.buffer[:CHUNK_BYTES]), last=False)
            del self.buffer[:CHUNK_BYTES]
        return len(data)

    def flush(self) -> None:
        self.target.flush()

    def close(self) -> None:
        if not self.closed:
            self._emit(bytes(self.buffer), last=True)
            self.buffer.clear()
            self.closed = True
            self.target.flush()

    def _emit(self, chunk: bytes, *, last: bool) -> None:
        token = self.key_ring.encrypt(chunk, context=_chunk_context(self.context, self.index, last))
        self.target.write(token.encode("ascii") + b"\n")
        self.index += 1


class SealedReader:
    """A read-only file of the plaintext of a sealed `source` (positioned at its start)."""

    def __init__(self, source: BinaryIO, key_ring: KeyRing, context: bytes) -> None:
        if source.readline() != MAGIC:
            raise ValueError("not a sealed file")
        self.source = source
        self.key_ring = key_ring
        self.context = context
        self.buffer = b""
        self.index = 0
        self.done = False

    def seekable(self) -> bool:
        """Read once, front to back: each chunk is authenticated as it is read."""
        return False

    def _next_chunk(self) -> bytes:
        line = self.source.readline().rstrip(b"\n")
        if not line:
            raise SealedFileTruncated("the sealed file ends before its last chunk")
        token = line.decode("ascii")
        # The last chunk is the one that decrypts as such: try "more" first, the common case.
        for last in (False, True):
            context = _chunk_context(self.context, self.index, last)
            try:
                chunk = self.key_ring.decrypt(token, context=context)
            except DecryptionError:
                continue
            self.index += 1
            self.done = last
            return chunk
        decrypt_text(self.key_ring, token, _chunk_context(self.context, self.index, True))
        raise AssertionError("unreachable: decrypt_text raises for a token that does not decrypt")

    def read(self, size: int = -1) -> bytes:
        while not self.done and (size < 0 or len(self.buffer) < size):
            self.buffer += self._next_chunk()
        if size < 0:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self.source.close()


def open_maybe_sealed(source: BinaryIO, key_ring: KeyRing, context: bytes) -> BinaryIO:
    """`source` as it is, or its plaintext when it is a sealed file."""
    head = source.read(len(MAGIC))
    source.seek(0)
    if is_sealed(head):
        return SealedReader(source, key_ring, context)  # type: ignore[return-value]
    return source
