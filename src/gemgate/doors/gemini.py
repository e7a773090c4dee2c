"""The Gemini door: Google's generativelanguage REST protocol, as its clients expect it.

``POST {prefix}/{version}/models/{model}:{method}`` for generateContent,
streamGenerateContent (SSE with ``alt=sse``, a streamed JSON array without), countTokens,
embedContent and batchEmbedContents; ``GET {prefix}/{version}/models[/{model}]``. Every
failure is rendered in Google's error envelope.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncGenerator
from typing import Any

import orjson

from gemgate.asgi import (
    JSON_TYPE,
    SSE_TYPE,
    Request,
    Send,
    send_bytes,
    send_chunk,
    send_json,
    start_stream,
    until_disconnect,
)
from gemgate.billing import format_usd
from gemgate.doors.sse import JsonArrayFramer, sse_event
from gemgate.errors import GatewayError, InvalidArgument, NotFound, as_gateway_error
from gemgate.pipeline.auth import KeyCache, extract_key
from gemgate.pipeline.authorize import check_key, check_model, may_use
from gemgate.pipeline.capabilities import check_capabilities
from gemgate.pipeline.compose import Pipeline
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.route import Route, Router
from gemgate.providers.base import Chunk, UpstreamCall
from gemgate.types import parse_request

METHODS = frozenset(
    {"generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"}
)
LISTED_METHODS = ("generateContent", "countTokens", "embedContent", "batchEmbedContents")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def error_headers(ctx: RequestContext, exc: GatewayError) -> list[tuple[bytes, bytes]]:
    return [(b"x-gemgate-request-id", ctx.request_id.encode()), *exc.headers()]


def model_resource(route: Route) -> dict[str, Any]:
    info = route.info
    methods = [m for m in LISTED_METHODS if info.supports(m)]
    data: dict[str, Any] = {
        "name": f"models/{route.model_id}",
        "baseModelId": route.model_id,
        "version": info.version or "001",
        "displayName": info.display_name,
        "description": info.description,
        "inputTokenLimit": info.input_token_limit,
        "outputTokenLimit": info.output_token_limit,
        "supportedGenerationMethods": methods,
    }
    for field, value in (
        ("temperature", info.temperature),
        ("maxTemperature", info.max_temperature),
        ("topP", info.top_p),
        ("topK", info.top_k),
    ):
        if value is not None:
            data[field] = value
    data["thinking"] = info.thinking
    return data


def _page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode().rstrip("=")


def _page_offset(token: str) -> int:
    try:
        text = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        if text.startswith("o:") and text[2:].isdigit():
            return int(text[2:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidArgument.field("pageToken", "invalid page token")


def _page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_SIZE
    try:
        size = int(raw)
    except ValueError:
        raise InvalidArgument.field("pageSize", f"must be an integer, got {raw!r}") from None
    if size < 0:
        raise InvalidArgument.field("pageSize", "must not be negative")
    return min(size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


class GeminiDoor:
    def __init__(self, *, keys: KeyCache, router: Router, pipeline: Pipeline, max_body: int) -> None:
        self._keys = keys
        self._router = router
        self._pipeline = pipeline
        self._max_body = max_body

    async def _authenticate(self, req: Request, ctx: RequestContext) -> None:
        ctx.key = await self._keys.authenticate(extract_key(req.headers, req.query))
        check_key(ctx.key, req.client_ip)

    # --- models ----------------------------------------------------------------------------

    async def list_models(self, req: Request, send: Send, version: str) -> None:
        ctx = RequestContext(door="gemini", method="models.list", client_ip=req.client_ip)
        try:
            await self._authenticate(req, ctx)
            assert ctx.key is not None
            routes = [r for r in self._router.routes() if may_use(ctx.key, r.model_id)]
            size = _page_size(req.query.get("pageSize"))
            token = req.query.get("pageToken")
            offset = _page_offset(token) if token else 0
            page = routes[offset : offset + size]
            body: dict[str, Any] = {"models": [model_resource(r) for r in page]}
            if offset + size < len(routes):
                body["nextPageToken"] = _page_token(offset + size)
            await send_json(send, 200, body)
        except Exception as exc:
            await self._send_error(send, ctx, exc)

    async def get_model(self, req: Request, send: Send, version: str, model: str) -> None:
        ctx = RequestContext(door="gemini", method="models.get", client_ip=req.client_ip)
        try:
            await self._authenticate(req, ctx)
            assert ctx.key is not None
            route = self._router.find(model)
            if route is None or not may_use(ctx.key, route.model_id):
                raise NotFound(f"models/{model} is not found for API version {version}.")
            await send_json(send, 200, model_resource(route))
        except Exception as exc:
            await self._send_error(send, ctx, exc)

    # --- model methods ---------------------------------------------------------------------

    async def call(self, req: Request, send: Send, version: str, model: str, method: str) -> None:
        ctx = RequestContext(door="gemini", method=method, client_ip=req.client_ip)
        try:
            if method not in METHODS:
                raise NotFound(f"Method {method} is not found for API version {version}.")
            await self._authenticate(req, ctx)
            assert ctx.key is not None
            route = self._router.resolve(model, method, version)
            check_model(ctx.key, route.model_id)
            if not route.info.supports(method):
                raise NotFound(
                    f"models/{model} is not found for API version {version}, or is not "
                    f"supported for {method}. Call ListModels to see the list of available "
                    "models and their supported methods."
                )
            ctx.route = route
            body = await req.body(self._max_body)
            request = parse_request(method, body)
            if method in ("generateContent", "streamGenerateContent"):
                check_capabilities(route.info, request)
            call = UpstreamCall(
                model=route.upstream_model,
                method=method,  # type: ignore[arg-type]
                request=request,
                raw=body if route.provider_type == "gemini" else None,
                request_id=ctx.request_id,
                client_bytes=len(body),
            )
            if method == "streamGenerateContent":
                await self._stream(req, send, ctx, route, call)
            elif method == "countTokens":
                await self._count_tokens(send, ctx, request)
            else:
                await self._unary(send, ctx, route, call)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._send_error(send, ctx, exc)

    async def _unary(self, send: Send, ctx: RequestContext, route: Route, call: UpstreamCall) -> None:
        if call.method in ("embedContent", "batchEmbedContents"):
            reply, metered = await self._pipeline.embed(ctx, route, call)
        else:
            reply, metered = await self._pipeline.generate(ctx, route, call)
        await send_bytes(
            send,
            200,
            reply.body,
            JSON_TYPE,
            [
                (b"x-gemgate-request-id", ctx.request_id.encode()),
                (b"x-gemgate-cost-usd", format_usd(metered.cost_nanos).encode()),
            ],
        )

    async def _count_tokens(self, send: Send, ctx: RequestContext, request: dict[str, Any]) -> None:
        inner = request.get("generateContentRequest") or request
        counted = await self._pipeline.counter.count_request_async(inner)
        details = [
            {"modality": modality, "tokenCount": count}
            for modality, count in counted.by_modality.items()
            if count
        ]
        body: dict[str, Any] = {"totalTokens": counted.total}
        if details:
            body["promptTokensDetails"] = details
        await send_json(send, 200, body, [(b"x-gemgate-request-id", ctx.request_id.encode())])

    async def _stream(
        self, req: Request, send: Send, ctx: RequestContext, route: Route, call: UpstreamCall
    ) -> None:
        sse = req.query.get("alt") == "sse"
        chunks: AsyncGenerator[Chunk, None] = self._pipeline.stream(ctx, route, call)
        try:
            await until_disconnect(req.receive, self._relay(send, ctx, chunks, sse))
        finally:
            await chunks.aclose()

    async def _relay(self, send: Send, ctx: RequestContext, chunks: Any, sse: bool) -> None:
        headers = [(b"x-gemgate-request-id", ctx.request_id.encode())]
        framer = JsonArrayFramer()
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = None
        except GatewayError as exc:
            # Nothing was sent yet: a plain error answer with its own HTTP status.
            await self._send_error(send, ctx, exc)
            return
        await start_stream(send, SSE_TYPE if sse else JSON_TYPE, headers)
        try:
            if first is not None:
                await send_chunk(send, sse_event(first.body) if sse else framer.item(first.body))
            async for chunk in chunks:
                await send_chunk(send, sse_event(chunk.body) if sse else framer.item(chunk.body))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = as_gateway_error(exc, ctx.request_id).google_body()
            tail = sse_event(orjson.dumps(err)) if sse else framer.error(err)
            await send_chunk(send, tail, more=False)
            return
        await send_chunk(send, b"" if sse else framer.end(), more=False)

    async def _send_error(self, send: Send, ctx: RequestContext, exc: BaseException) -> None:
        err = as_gateway_error(exc, ctx.request_id)
        if self._pipeline.metrics is not None:
            self._pipeline.metrics.reject("gemini", err.code)
        await send_json(send, err.code, err.google_body(), error_headers(ctx, err))
