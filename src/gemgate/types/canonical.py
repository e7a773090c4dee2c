"""The canonical request and answers that cross every layer: doors parse into
:class:`CanonicalRequest`, providers take an :class:`UpstreamCall` and give back a
:class:`Reply` or :class:`Chunk` stream, doors render those.

The canonical body is Gemini's wire JSON (camelCase). A door whose protocol an upstream
also speaks keeps the client's original bytes (``raw``) so that a channel speaking that
protocol can forward them untouched; a reply in that protocol says so (``protocol``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

Method = Literal[
    "generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents",
    "bidiGenerateContent",  # a Live session (opened through the attempt loop, never a call)
]
GEMINI = "gemini"  # the canonical protocol's name


@dataclass(slots=True)
class CanonicalRequest:
    """One model call as a door understood it.

    ``model`` is the public model id the client named; ``body`` the validated canonical
    request. ``raw`` holds the client's bytes in ``protocol`` when a channel speaking that
    protocol may forward them. When the door could not translate every field (only a
    channel speaking the client's protocol can honour them), ``untranslated`` is the error
    any other channel's attempt raises. ``prepare`` runs after admission, before the first
    attempt (e.g. fetching remote media). ``repeat`` asks for that many separate calls,
    each admitted and billed on its own (OpenAI's image ``n``).

    A request naming gateway-held resources (files, cached contents) carries their known
    sizes in ``references`` (``tokens.Reference`` by URI or name), a ``resolve`` that
    gives the body to send on one channel (``resolve(channel, upstream_key)``, the key an
    ``UpstreamKey`` or None: the resources copied to that channel's upstream, or inlined),
    and ``prefer``: the labels of channels that already hold them, tried first.
    """

    model: str
    method: Method
    body: dict[str, Any]
    protocol: str = GEMINI
    raw: bytes | None = None
    client_bytes: int = 0
    max_output: int | None = None  # admission's output bound; None: from the request
    untranslated: Exception | None = None
    prepare: Callable[[dict[str, Any]], Awaitable[None]] | None = None
    repeat: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # door-private rendering options
    references: dict[str, Any] = field(default_factory=dict)
    resolve: Callable[[Any, Any], Awaitable[dict[str, Any]]] | None = None
    prefer: tuple[str, ...] = ()
    # Client headers an upstream speaking the client's protocol must see with ``raw``
    # (Anthropic's ``anthropic-beta``, ``anthropic-version``), lowercased names.
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def stream(self) -> bool:
        return self.method == "streamGenerateContent"

    @property
    def embedding(self) -> bool:
        return self.method in ("embedContent", "batchEmbedContents")


@dataclass(slots=True)
class UpstreamCall:
    """One attempt at an upstream.

    ``request`` is the validated canonical request. ``raw`` holds the client's original
    bytes in ``protocol`` when this channel's provider speaks it (the provider then sends
    them unchanged and answers in that protocol); otherwise it is None and the provider
    translates ``request``. ``client_model`` is the model name inside ``raw``, so a provider
    can tell whether it must name its upstream model instead. ``credential`` is the upstream
    key the attempt loop chose (None: the provider's first key, if it has any).
    """

    model: str  # the upstream's own model name
    method: Method
    request: dict[str, Any]
    raw: bytes | None = None
    protocol: str = GEMINI
    client_model: str = ""
    credential: str | None = None
    request_id: str = ""
    client_bytes: int = 0  # size of the client's request body (0: unknown), for cheap bounds
    headers: dict[str, str] = field(default_factory=dict)  # the door's, sent only with ``raw``


@dataclass(slots=True)
class Reply:
    """A complete answer: its bytes in ``protocol`` (canonical Gemini JSON unless it is a
    passthrough), the parsed form when the adapter has it, and the usage in Gemini's
    ``usageMetadata`` shape whatever the protocol."""

    body: bytes
    data: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    protocol: str = GEMINI
    service_tier: str | None = None  # the tier the upstream says it served, as it spells it

    def json(self) -> dict[str, Any]:
        if self.data is None:
            self.data = orjson.loads(self.body)
        return self.data


@dataclass(slots=True)
class Chunk:
    """One streamed event: its bytes in ``protocol`` (a canonical GenerateContentResponse, or
    a passthrough event exactly as the upstream framed it) and its cumulative usage, if any.

    ``text`` is the generated text (thoughts included) in this chunk, so that a stream cut
    before any usage arrives can still be counted. ``finishing`` says whether this chunk
    ends the answer; when None it is read from the Gemini ``finishReason``.
    """

    body: bytes
    usage: dict[str, Any] | None = None
    data: dict[str, Any] | None = None
    text: str = ""
    finishing: bool | None = None
    protocol: str = GEMINI
    service_tier: str | None = None  # the tier the upstream says it serves the stream in

    def json(self) -> dict[str, Any]:
        if self.data is None:
            self.data = orjson.loads(self.body)
        return self.data

    def finishes(self) -> bool:
        """Whether this chunk ends the answer (so the ledger must commit before it is sent)."""
        if self.finishing is not None:
            return self.finishing
        data = self.json()
        feedback = data.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            return True
        candidates = data.get("candidates")
        if not isinstance(candidates, list):
            return False
        return any(isinstance(c, dict) and c.get("finishReason") for c in candidates)
