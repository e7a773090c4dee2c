"""What :func:`~gemgate.pipeline.serve.Serve` asks of a door: a codec, and nothing else.

A door parses its protocol into a :class:`~gemgate.types.canonical.CanonicalRequest` and
renders canonical answers, stream chunks and errors back into its protocol. It runs no
stage itself (no authentication, routing, admission or billing) and never sees a provider.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gemgate.asgi import Request
from gemgate.billing import Usage
from gemgate.catalog import CatalogModel
from gemgate.errors import GatewayError
from gemgate.pipeline.context import RequestContext
from gemgate.types.canonical import CanonicalRequest, Chunk, Reply


@dataclass(frozen=True, slots=True)
class Endpoint:
    """What a route matched: the door's name for the operation, and the path's parameters
    (Gemini's ``version``, ``model``, ``method``)."""

    door: str
    operation: str  # e.g. "model.call", "models.list", "chat", "embeddings"
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelEntry:
    """A deployed model as listings show it."""

    id: str
    info: CatalogModel
    owner: str  # the provider of its first channel


@dataclass(slots=True)
class Answer:
    """One billed call's reply and usage (a request with ``repeat`` has several)."""

    reply: Reply
    usage: Usage
    cost_nanos: int


# A door may look a model up while parsing (to tailor its translation to the model's
# limits); None: not deployed or not visible to the caller.
ModelLookup = Callable[[str], CatalogModel | None]


class StreamEncoder(Protocol):
    """Renders one stream: its content type, each chunk, the end, or an error after the
    stream began."""

    content_type: bytes

    def chunk(self, chunk: Chunk) -> bytes: ...

    def end(self) -> bytes: ...

    def error(self, err: GatewayError) -> bytes: ...


class KeepsState(Protocol):
    """Optional hooks of a door whose protocol keeps objects per key (the Responses API's
    stored responses). Serve looks each one up on the door (or its stream encoder) and
    calls it when present; a door without them costs nothing more.

    - ``attach(ctx, creq)``: after parsing, the caller authenticated (``ctx.key``): load
      what the request names (a previous response) into ``creq``.
    - ``keep(ctx, creq)``: after a unary answer is rendered, before it is sent; a stream
      encoder's ``keep()``: after its last chunk, before its end is rendered.
    - ``operations`` and ``operate(endpoint, req, ctx) -> (status, body)``: the door's
      operations on its stored objects (retrieve, delete, list), called after
      authentication instead of a model call.
    """

    operations: frozenset[str]

    async def attach(self, ctx: RequestContext, creq: CanonicalRequest) -> None: ...

    async def keep(self, ctx: RequestContext, creq: CanonicalRequest) -> None: ...

    async def operate(
        self, endpoint: Endpoint, req: Request, ctx: RequestContext
    ) -> tuple[int, bytes]: ...


class Door(Protocol):
    name: str  # as usage records and metrics name it

    def credential(self, req: Request) -> str | None:
        """The caller's gateway key, from wherever this protocol carries it."""
        ...

    def parse(
        self, req: Request, endpoint: Endpoint, body: bytes, lookup: ModelLookup
    ) -> Awaitable[CanonicalRequest]: ...

    def render(self, creq: CanonicalRequest, request_id: str, answers: Sequence[Answer]) -> bytes:
        """The body of a successful unary answer."""
        ...

    def encoder(self, creq: CanonicalRequest, request_id: str) -> StreamEncoder: ...

    def render_error(self, err: GatewayError) -> tuple[int, bytes]:
        """HTTP status and body of an error answer in this protocol's envelope."""
        ...

    def render_models(
        self, endpoint: Endpoint, req: Request, models: Sequence[ModelEntry]
    ) -> dict[str, Any]:
        """``models.list`` (``models`` is what the caller may use) or ``models.get``
        (``models`` holds the one asked for, or is empty: the door raises NotFound)."""
        ...
