"""The small protocol every upstream adapter implements.

Requests and answers cross this boundary in the canonical form (:mod:`gemgate.types.canonical`):
Gemini's wire JSON. An adapter for another protocol translates on its side; the doors never
know which adapter served them.

An adapter raises :mod:`gemgate.errors` types and never retries: the attempt loop
(:mod:`gemgate.pipeline.attempts`) decides, for every upstream alike, whether another
upstream key or channel is tried. It classifies failures by their type:
:class:`~gemgate.errors.CredentialRejected` (the key is set aside),
:class:`~gemgate.errors.UpstreamRateLimited` (the key rests), other
:class:`~gemgate.errors.UpstreamError` (the channel failed) and anything else (the client's
own request: never tried elsewhere).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from gemgate.types.canonical import Chunk, Method, Reply, UpstreamCall

__all__ = ["Chunk", "Method", "Provider", "Reply", "UpstreamCall"]


class Provider(Protocol):
    """An upstream.

    ``speaks`` names the client wire protocols (``"gemini"``, ``"openai.chat"``) whose
    original bytes the adapter accepts in :attr:`UpstreamCall.raw` and forwards untouched,
    answering in that same protocol. ``secrets`` are every credential it may send, so that
    nothing it relays can show one.

    An adapter whose upstream speaks the Live API (Google's) also has ``open_live(call,
    setup_frame, setup_timeout)``, which opens one upstream session and returns it once
    the upstream has completed the setup; a Live session on a model with such channels is
    relayed to them, on any other it is run by the gateway turn by turn.
    """

    name: str
    speaks: frozenset[str]

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
