"""The Gemini door for stateful resources: files, cachedContents, batches, operations.

Every endpoint authenticates the caller's key as the model endpoints do (an upload's
chunks may instead be named by their upload id alone), reads its JSON body (bounded),
hands the work to a resource service and renders the answer in Google's JSON; every
failure is answered in Google's error envelope. The endpoints themselves are in
:mod:`.gemini_files`, :mod:`.gemini_caches` and :mod:`.gemini_batches`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gemgate.asgi import JSON_TYPE, Request, Send, send_bytes
from gemgate.errors import GatewayError, InvalidArgument, NotFound, as_gateway_error
from gemgate.pipeline.auth import KeyCache, extract_key
from gemgate.pipeline.authorize import check_key
from gemgate.pipeline.context import new_request_id
from gemgate.store.keys import KeyRecord
from gemgate.types.validate import parse_json

#: JSON bodies of resource calls (a batch's inline requests may be large).
METADATA_LIMIT = 64 * 1024


@dataclass(slots=True)
class Call:
    """One resource request: the route's parameters and what every endpoint needs."""

    req: Request
    send: Send
    params: dict[str, str]
    request_id: str
    base: str  # the gateway's URL as this client reaches it, path prefix included
    key: KeyRecord | None = None

    @property
    def version(self) -> str:
        return self.params.get("version", "v1beta")

    def headers(self, extra: list[tuple[bytes, bytes]] | None = None) -> list[tuple[bytes, bytes]]:
        return [(b"x-gemgate-request-id", self.request_id.encode()), *(extra or [])]

    async def json(self, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        await send_bytes(self.send, status, orjson.dumps(data), JSON_TYPE, self.headers(extra))

    async def body(self, limit: int = METADATA_LIMIT) -> dict[str, Any]:
        raw = await self.req.body(limit)
        if not raw.strip():
            return {}
        data = parse_json(raw)
        if not isinstance(data, dict):
            raise InvalidArgument("Invalid JSON payload received: the body must be an object.")
        return data


Handler = Callable[[Call], Awaitable[None]]


def base_url(req: Request, public_url: str | None, marker: str) -> str:
    """The gateway's base URL for this request: ``public_url``, else the request's own
    scheme and host; then the path prefix the request came in under (what precedes
    ``marker`` in its path)."""
    if public_url:
        root = public_url.rstrip("/")
    else:
        scheme = req.scope.get("scheme") or "http"
        host = req.headers.get("host")
        if not host:
            server = req.scope.get("server") or ("127.0.0.1", 80)
            host = f"{server[0]}:{server[1]}"
        root = f"{scheme}://{host}"
    path = req.path
    at = path.find(marker)
    return root + (path[:at] if at > 0 else "")


def field(obj: dict[str, Any], camel: str) -> Any:
    """A proto3 JSON field given in lowerCamelCase or snake_case."""
    if camel in obj:
        return obj[camel]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return obj.get(snake)


def page_size(raw: str | None, default: int, maximum: int) -> int:
    if raw is None or raw == "":
        return default
    try:
        size = int(raw)
    except ValueError:
        raise InvalidArgument.field("pageSize", f"must be an integer, got {raw!r}") from None
    if size < 0:
        raise InvalidArgument.field("pageSize", "must not be negative")
    return min(size or default, maximum)


def page_token(parts: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode("|".join(parts).encode()).decode().rstrip("=")


def read_page_token(token: str | None) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        when, _, last = text.partition("|")
        if when and last:
            return when, last
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidArgument.field("pageToken", "invalid page token")


class ResourceDoor:
    """Dispatches a resource route to its endpoint."""

    def __init__(self, keys: KeyCache, public_url: str | None) -> None:
        self.keys = keys
        self.public_url = public_url
        self.endpoints: dict[str, tuple[Handler, str, bool]] = {}

    def add(self, operation: str, handler: Handler, marker: str, *, key_required: bool = True) -> None:
        """``marker``: the part of the path after the prefix (for the base URL)."""
        self.endpoints[operation] = (handler, marker, key_required)

    async def authenticate(self, req: Request, required: bool) -> KeyRecord | None:
        plain = extract_key(req.headers, req.query)
        if plain is None and not required:
            return None
        key = await self.keys.authenticate(plain)
        check_key(key, req.client_ip)
        return key

    async def __call__(self, operation: str, params: dict[str, str], req: Request, send: Send) -> None:
        call = Call(req, send, params, new_request_id(), "")
        try:
            found = self.endpoints.get(operation)
            if found is None:
                raise NotFound(f"The requested URL {req.path} was not found on this server.")
            handler, marker, required = found
            call.base = base_url(req, self.public_url, marker.format(**params))
            call.key = await self.authenticate(req, required)
            await handler(call)
        except Exception as exc:
            await send_error(call, exc)


async def send_error(
    call: Call, exc: BaseException, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    err: GatewayError = as_gateway_error(exc, call.request_id)
    await call.json(err.code, err.google_body(), [*err.headers(), *(extra or [])])
