"""The small protocol every upstream adapter implements.

Requests and answers cross this boundary in the canonical form: Gemini's wire JSON
(camelCase). An adapter for another protocol translates on its side; the doors never know
which adapter served them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson

Method = Literal[
    "generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"
]


@dataclass(slots=True)
class UpstreamCall:
    """One call to an upstream.

    ``request`` is the validated canonical request (camelCase keys). ``raw`` holds the
    client's original Gemini bytes when they may be forwarded unchanged (same protocol, no
    rewrite needed); adapters that speak Gemini send ``raw`` and never re-serialise.
    """

    model: str  # the upstream's own model name
    method: Method
    request: dict[str, Any]
    raw: bytes | None = None
    request_id: str = ""
    client_bytes: int = 0  # size of the client's request body (0: unknown), for cheap bounds


@dataclass(slots=True)
class Reply:
    """A complete answer: Gemini JSON bytes, plus the parsed form when the adapter has it."""

    body: bytes
    data: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None  # usageMetadata, camelCase, when the answer carries one

    def json(self) -> dict[str, Any]:
        if self.data is None:
            self.data = orjson.loads(self.body)
        return self.data


@dataclass(slots=True)
class Chunk:
    """One streamed GenerateContentResponse: its JSON bytes and its cumulative usage, if any.

    ``text`` is the generated text (thoughts included) in this chunk, so that a stream cut
    before any usage arrives can still be counted. ``finishing`` says whether this chunk
    ends the answer; when None the pipeline reads it from the Gemini ``finishReason``.
    """

    body: bytes
    usage: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    text: str = ""
    finishing: bool | None = None

    def json(self) -> dict[str, Any]:
        if self.data is None:
            self.data = orjson.loads(self.body)
        return self.data


@dataclass(slots=True)
class ProviderInfo:
    name: str
    type: str
    secrets: tuple[str, ...] = field(default_factory=tuple)


class Provider(Protocol):
    """An upstream. Implementations raise :mod:`gemgate.errors` types, never raw exceptions."""

    name: str

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def generate(self, call: UpstreamCall) -> Reply: ...

    def stream(self, call: UpstreamCall) -> AsyncIterator[Chunk]:
        """Yield chunks as the upstream produces them. Closing the iterator (``aclose``)
        cancels the upstream work."""
        ...

    async def embed(self, call: UpstreamCall) -> Reply:
        """``embedContent`` or ``batchEmbedContents``; the answer is Gemini's JSON for it."""
        ...
