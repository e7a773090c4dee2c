"""Reading server-sent events from an upstream, one event at a time as bytes arrive."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator


async def sse_events(lines: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """Yield the ``data`` of each event (multi-line data joined by ``\\n``).

    ``lines`` is a byte stream iterated line by line (aiohttp's ``StreamReader`` is).
    Comments, ``event:``/``id:``/``retry:`` fields are skipped; an event ends at a blank line
    or at the end of the stream.
    """
    data: list[bytes] = []
    async for raw in lines:
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
                data = []
            continue
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
    if data:
        yield b"\n".join(data)
