"""Reading server-sent events from an upstream, one event at a time as bytes arrive.

Events are cut from the byte stream as it comes (not line by line through the HTTP
client's line reader, whose line limit a single large event, such as a streamed image,
exceeds). One event may be at most :data:`MAX_EVENT_BYTES`.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator

from gemgate.errors import BadGateway

MAX_EVENT_BYTES = 64 * 1024 * 1024


async def sse_events(
    pieces: AsyncIterable[bytes], max_event: int = MAX_EVENT_BYTES
) -> AsyncIterator[bytes]:
    """Yield the ``data`` of each event (multi-line data joined by ``\\n``).

    ``pieces`` are the body's bytes as they arrive, cut anywhere. Comments and
    ``event:``/``id:``/``retry:`` fields are skipped; an event ends at a blank line or at
    the end of the stream.
    """
    buf = bytearray()
    data: list[bytes] = []
    size = 0
    scan = 0
    async for piece in pieces:
        buf += piece
        while True:
            nl = buf.find(b"\n", scan)
            if nl < 0:
                scan = len(buf)
                if size + len(buf) > max_event:
                    raise BadGateway(f"An upstream stream event exceeds {max_event} bytes.")
                break
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            scan = 0
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data:
                    yield b"\n".join(data)
                    data = []
                    size = 0
                continue
            if line.startswith(b"data:"):
                value = line[5:]
                value = value[1:] if value.startswith(b" ") else value
                data.append(value)
                size += len(value)
    if buf:
        line = bytes(buf).rstrip(b"\r")
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        yield b"\n".join(data)
