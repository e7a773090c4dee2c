"""The OpenAI door: chat/completions, models, embeddings and images, in OpenAI's protocol.

Requests are translated into the canonical Gemini form (``gemgate.translate``) and run
through the same pipeline as the Gemini door, so keys, budgets, the ledger and reports
apply identically; each record says it came through the ``openai`` door. When the model's
upstream itself speaks OpenAI, the client's original bytes are forwarded after validation
(unknown fields survive) and usage is read from the upstream's answer.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator
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
from gemgate.doors.openai_errors import openai_error_body, openai_status
from gemgate.doors.remote_media import RemoteMedia
from gemgate.doors.sse import SSE_DONE, sse_openai
from gemgate.errors import GatewayError, InvalidArgument, NotFound, as_gateway_error
from gemgate.pipeline.auth import KeyCache, extract_key
from gemgate.pipeline.authorize import check_key, check_model, may_use
from gemgate.pipeline.capabilities import check_capabilities
from gemgate.pipeline.compose import Pipeline
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.route import Route, Router
from gemgate.providers.base import Chunk, Reply, UpstreamCall
from gemgate.translate import (
    ChatStreamEncoder,
    chat_to_gemini,
    gemini_to_chat_response,
    usage_to_gemini,
)
from gemgate.types import normalise, parse_json
from gemgate.types.validate import check_generate

ADMISSION_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "n", "stream", "stream_options"}
)


def _delta_text(data: dict[str, Any]) -> str:
    out = []
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict):
            for field in ("content", "reasoning_content"):
                if isinstance(delta.get(field), str):
                    out.append(delta[field])
    return "".join(out)


def _event_payload(event: bytes) -> bytes:
    lines = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines)


class OpenAIDoor:
    def __init__(
        self,
        *,
        keys: KeyCache,
        router: Router,
        pipeline: Pipeline,
        max_body: int,
        allow_remote_media: bool = False,
    ) -> None:
        self._keys = keys
        self._router = router
        self._pipeline = pipeline
        self._max_body = max_body
        self._media = RemoteMedia(enabled=allow_remote_media)

    async def handle(self, name: str, req: Request, send: Send, params: dict[str, str]) -> None:
        method = name.removeprefix("openai.")
        ctx = RequestContext(door="openai", method=method, client_ip=req.client_ip)
        try:
            await self._authenticate(req, ctx)
            if method == "chat":
                ctx.method = "chat.completions"
                await self._chat(req, send, ctx)
            elif method == "list":
                await self._list(send, ctx)
            elif method == "get":
                await self._get(send, ctx, params["model"])
            else:
                from gemgate.doors.openai_media import handle_media

                await handle_media(self, method, req, send, ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self.send_error(send, ctx, exc)

    # --- shared stages -----------------------------------------------------------------------

    async def _authenticate(self, req: Request, ctx: RequestContext) -> None:
        ctx.key = await self._keys.authenticate(extract_key(req.headers, req.query))
        check_key(ctx.key, req.client_ip)

    def route(self, ctx: RequestContext, model: Any, method: str) -> Route:
        if not isinstance(model, str) or not model:
            raise InvalidArgument.field("model", "you must provide a model parameter")
        assert ctx.key is not None
        found = self._router.find(model.removeprefix("models/"))
        if found is None or not may_use(ctx.key, found.model_id):
            if found is not None:
                check_model(ctx.key, found.model_id)
            raise NotFound(f"The model `{model}` does not exist or you do not have access to it.", reason="model_not_found")
        if not found.info.supports(method):
            raise InvalidArgument.field("model", f"model {model} does not support {method}")
        ctx.route = found
        return found

    async def body(self, req: Request) -> dict[str, Any]:
        data = parse_json(await req.body(self._max_body))
        if not isinstance(data, dict):
            raise InvalidArgument("The request body must be a JSON object.")
        return data

    @property
    def pipeline(self) -> Pipeline:
        return self._pipeline

    @property
    def media(self) -> RemoteMedia:
        return self._media

    @property
    def max_body(self) -> int:
        return self._max_body

    async def send_error(self, send: Send, ctx: RequestContext, exc: BaseException) -> None:
        err = as_gateway_error(exc, ctx.request_id)
        headers = [(b"x-gemgate-request-id", ctx.request_id.encode()), *err.headers()]
        status = openai_status(err)
        if self._pipeline.metrics is not None:
            self._pipeline.metrics.reject("openai", status)
        await send_json(send, status, openai_error_body(err), headers)

    # --- models ------------------------------------------------------------------------------

    @staticmethod
    def _model(route: Route) -> dict[str, Any]:
        return {"id": route.model_id, "object": "model", "created": 0, "owned_by": route.provider_name}

    async def _list(self, send: Send, ctx: RequestContext) -> None:
        assert ctx.key is not None
        key = ctx.key
        data = [self._model(r) for r in self._router.routes() if may_use(key, r.model_id)]
        await send_json(send, 200, {"object": "list", "data": data})

    async def _get(self, send: Send, ctx: RequestContext, model: str) -> None:
        route = self.route(ctx, model, "countTokens")
        await send_json(send, 200, self._model(route))

    # --- chat --------------------------------------------------------------------------------

    async def _chat(self, req: Request, send: Send, ctx: RequestContext) -> None:
        raw = await req.body(self._max_body)
        body = parse_json(raw)
        if not isinstance(body, dict):
            raise InvalidArgument("The request body must be a JSON object.")
        route = self.route(ctx, body.get("model"), "generateContent")
        passthrough = route.provider_type == "openai"
        # A same-protocol upstream gets the original bytes, unknown fields and all; the
        # canonical form is then needed only to admit the request (prompt, output bound).
        model, translated = chat_to_gemini(
            {k: v for k, v in body.items() if k in ADMISSION_FIELDS} if passthrough else body
        )
        request = normalise("GenerateContentRequest", translated)
        check_generate(request)
        check_capabilities(route.info, request)
        await self._media.resolve(request)
        stream = bool(body.get("stream"))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        call = UpstreamCall(
            model=route.upstream_model,
            method="streamGenerateContent" if stream else "generateContent",
            request=request,
            request_id=ctx.request_id,
            client_bytes=len(raw),
        )
        forward = raw
        if passthrough and route.upstream_model != model:
            forward = orjson.dumps({**body, "model": route.upstream_model})
        created = int(time.time())
        if not stream:
            invoke = (lambda: self._forward(route, forward)) if passthrough else None
            reply, metered = await self._pipeline.generate(ctx, route, call, invoke=invoke)
            headers = [
                (b"x-gemgate-request-id", ctx.request_id.encode()),
                (b"x-gemgate-cost-usd", format_usd(metered.cost_nanos).encode()),
            ]
            if passthrough:
                await send_bytes(send, 200, reply.body, JSON_TYPE, headers)
            else:
                answer = gemini_to_chat_response(reply.json(), model=model, request_id=f"chatcmpl-{ctx.request_id}", created=created)
                await send_json(send, 200, answer, headers)
            return
        source = self._forward_stream(route, forward) if passthrough else None
        chunks = self._pipeline.stream(ctx, route, call, source=source)
        encoder = None if passthrough else ChatStreamEncoder(model, f"chatcmpl-{ctx.request_id}", created, include_usage)
        await self._stream(req, send, ctx, chunks, encoder)

    async def _forward(self, route: Route, raw: bytes) -> Reply:
        _status, body = await route.provider.forward_raw("chat/completions", raw)  # type: ignore[attr-defined]
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            data = {}
        usage = data.get("usage") if isinstance(data, dict) else None
        return Reply(body=body, data=data if isinstance(data, dict) else {}, usage=usage_to_gemini(usage) if isinstance(usage, dict) else None)

    async def _forward_stream(self, route: Route, raw: bytes) -> AsyncIterator[Chunk]:
        events = route.provider.forward_raw_stream("chat/completions", raw)  # type: ignore[attr-defined]
        try:
            async for event in events:
                payload = _event_payload(event)
                if not payload:
                    continue
                if payload == b"[DONE]":
                    yield Chunk(body=event, data={}, finishing=True)
                    continue
                try:
                    data = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(data, dict):
                    continue
                usage = data.get("usage")
                yield Chunk(
                    body=event,
                    data=data,
                    usage=usage_to_gemini(usage) if isinstance(usage, dict) else None,
                    text=_delta_text(data),
                    finishing=False,
                )
        finally:
            await events.aclose()

    async def _stream(
        self,
        req: Request,
        send: Send,
        ctx: RequestContext,
        chunks: AsyncGenerator[Chunk, None],
        encoder: ChatStreamEncoder | None,
    ) -> None:
        try:
            await until_disconnect(req.receive, self._relay(send, ctx, chunks, encoder))
        finally:
            await chunks.aclose()

    async def _relay(
        self, send: Send, ctx: RequestContext, chunks: AsyncGenerator[Chunk, None], encoder: ChatStreamEncoder | None
    ) -> None:
        try:
            first: Chunk | None = await chunks.__anext__()
        except StopAsyncIteration:
            first = None
        except GatewayError as exc:
            await self.send_error(send, ctx, exc)
            return
        await start_stream(send, SSE_TYPE, [(b"x-gemgate-request-id", ctx.request_id.encode())])
        last_usage: dict[str, Any] | None = None
        try:
            pending = first
            while pending is not None:
                if encoder is None:
                    await send_chunk(send, pending.body)
                else:
                    if pending.usage is not None:
                        last_usage = pending.usage
                    for out in encoder.feed(pending.json()):
                        await send_chunk(send, sse_openai(orjson.dumps(out)))
                pending = await anext(chunks, None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err = as_gateway_error(exc, ctx.request_id)
            await send_chunk(send, sse_openai(orjson.dumps(openai_error_body(err))), more=False)
            return
        if encoder is None:
            await send_chunk(send, b"", more=False)
            return
        tail = b"".join(sse_openai(orjson.dumps(out)) for out in encoder.finish(last_usage))
        await send_chunk(send, tail + SSE_DONE, more=False)
