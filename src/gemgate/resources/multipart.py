"""``multipart/related`` upload bodies (``uploadType=multipart``), read as a stream.

The first part is the JSON metadata (small, read whole, at most :data:`META_LIMIT`); the
second is the file, handed on piece by piece as it arrives: only a tail as long as the
closing delimiter is held back, in case the delimiter is split across pieces.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from gemgate.errors import InvalidArgument

META_LIMIT = 64 * 1024
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)


def boundary_of(content_type: str) -> str:
    match = _BOUNDARY.search(content_type or "")
    if not content_type.lower().startswith("multipart/") or match is None:
        raise InvalidArgument.field(
            "Content-Type", "a multipart upload needs multipart/related with a boundary"
        )
    return match.group(1)


class _Reader:
    def __init__(self, pieces: AsyncIterator[bytes]) -> None:
        self._pieces = pieces
        self.buffer = bytearray()
        self.ended = False

    async def more(self) -> bool:
        if self.ended:
            return False
        try:
            piece = await anext(self._pieces)
        except StopAsyncIteration:
            self.ended = True
            return False
        self.buffer += piece
        return True

    async def until(self, marker: bytes, limit: int, what: str) -> bytes:
        """The bytes before ``marker`` (consumed with it)."""
        while True:
            at = self.buffer.find(marker)
            if at >= 0:
                head = bytes(self.buffer[:at])
                del self.buffer[: at + len(marker)]
                return head
            if len(self.buffer) > limit or not await self.more():
                raise InvalidArgument(f"The multipart upload body is malformed: {what}.")


class MultipartUpload:
    """Parse with :meth:`open`; then :attr:`metadata`, :attr:`media_type` and
    :meth:`media` (the file's bytes, to be read once)."""

    def __init__(self, pieces: AsyncIterator[bytes], boundary: str) -> None:
        self._reader = _Reader(pieces)
        self._dash = b"--" + boundary.encode("latin-1")
        self.metadata = b""
        self.media_type = ""

    async def open(self) -> None:
        r = self._reader
        await r.until(self._dash + b"\r\n", META_LIMIT, "no opening boundary")
        headers = await r.until(b"\r\n\r\n", META_LIMIT, "no headers in the metadata part")
        if b"json" not in headers.lower():
            raise InvalidArgument("The first part of a multipart upload must be JSON metadata.")
        self.metadata = await r.until(b"\r\n" + self._dash + b"\r\n", META_LIMIT, "no media part")
        media_headers = await r.until(b"\r\n\r\n", META_LIMIT, "no headers in the media part")
        for line in media_headers.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-type":
                self.media_type = value.strip()

    async def media(self) -> AsyncIterator[bytes]:
        r = self._reader
        end = b"\r\n" + self._dash
        while True:
            at = r.buffer.find(end)
            if at >= 0:
                if at:
                    yield bytes(r.buffer[:at])
                return
            keep = len(end) - 1
            if len(r.buffer) > keep:
                out = bytes(r.buffer[:-keep])
                del r.buffer[:-keep]
                yield out
            if not await r.more():
                raise InvalidArgument("The multipart upload body ends before its closing boundary.")
