"""The OpenAI door: chat/completions, models, embeddings and images, in OpenAI's protocol.

Requests are translated into the canonical Gemini form (:mod:`gemgate.translate`) and
served like any other, so keys, budgets, channels, the ledger and reports apply
identically; each record says it came through the ``openai`` door. The client's original
chat bytes travel along: a channel whose upstream speaks OpenAI chat gets them unchanged
(unknown fields survive) and its answer comes back as it was sent. A request carrying
fields the translation does not know can be served only by such a channel.

A Gemini tool call's thought signature rides in its tool-call id (as well as in Google's
``extra_content``), so that clients which drop unknown fields still send it back
(:mod:`gemgate.translate.openai_ids`); Google's own extension block (``google`` or
``extra_body.google``) is read by :mod:`gemgate.translate.openai_google`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import orjson

from gemgate.asgi import SSE_TYPE, Request
from gemgate.doors.openai_errors import openai_error_body, openai_status
from gemgate.doors.openai_media import (
    parse_embeddings,
    parse_images,
    render_embeddings,
    render_images,
)
from gemgate.doors.remote_media import RemoteMedia
from gemgate.doors.sse import SSE_DONE, sse_openai
from gemgate.errors import GatewayError, InvalidArgument, NotFound
from gemgate.pipeline.auth import extract_key
from gemgate.pipeline.door import Answer, Endpoint, ModelEntry, ModelLookup
from gemgate.translate import ChatStreamEncoder, chat_to_gemini, gemini_to_chat_response
from gemgate.translate.openai_ids import carries_signed_ids
from gemgate.translate.openai_request import thought_tag
from gemgate.types import normalise, parse_json
from gemgate.types.canonical import CanonicalRequest, Chunk
from gemgate.types.validate import check_generate

CHAT = "openai.chat"  # the wire protocol of chat/completions bodies
# What admission needs of a chat request that only a same-protocol channel can serve.
ADMISSION_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "n", "stream", "stream_options"}
)


def _model_name(body: dict[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidArgument.field("model", "you must provide a model parameter")
    return model


def _canonical(body: dict[str, Any]) -> dict[str, Any]:
    _model, translated = chat_to_gemini(body)
    request = normalise("GenerateContentRequest", translated)
    check_generate(request)
    return request


class ChatStream:
    """Canonical chunks become ``chat.completion.chunk`` events ending in ``[DONE]``;
    passthrough events go out exactly as the upstream framed them."""

    content_type = SSE_TYPE

    def __init__(self, encoder: ChatStreamEncoder) -> None:
        self._encoder = encoder
        self._usage: dict[str, Any] | None = None
        self._passthrough = False

    def chunk(self, chunk: Chunk) -> bytes:
        if chunk.protocol == CHAT:
            self._passthrough = True
            return chunk.body
        if chunk.usage is not None:
            self._usage = chunk.usage
        return b"".join(sse_openai(orjson.dumps(out)) for out in self._encoder.feed(chunk.json()))

    def end(self) -> bytes:
        if self._passthrough:
            return b""
        tail = self._encoder.finish(self._usage)
        return b"".join(sse_openai(orjson.dumps(out)) for out in tail) + SSE_DONE

    def error(self, err: GatewayError) -> bytes:
        return sse_openai(orjson.dumps(openai_error_body(err)))


class OpenAIDoor:
    name = "openai"

    def __init__(self, *, allow_remote_media: bool = False) -> None:
        self._media = RemoteMedia(enabled=allow_remote_media)

    def credential(self, req: Request) -> str | None:
        return extract_key(req.headers, req.query)

    async def parse(
        self, req: Request, endpoint: Endpoint, body: bytes, lookup: ModelLookup
    ) -> CanonicalRequest:
        op = endpoint.operation
        if op == "chat.completions":
            return self._chat(body)
        if op == "embeddings":
            return parse_embeddings(_object(body))
        if op in ("images.generations", "images.edits"):
            return parse_images(req, body, lookup, edit=op == "images.edits")
        raise NotFound(f"Unknown endpoint {op}.")

    def _chat(self, raw: bytes) -> CanonicalRequest:
        body = _object(raw)
        model = _model_name(body)
        untranslated: InvalidArgument | None = None
        try:
            request = _canonical(body)
        except InvalidArgument as exc:
            # Perhaps a field only an OpenAI upstream knows: admit on what is understood,
            # and let only a channel that takes the original bytes serve it.
            untranslated = exc
            request = _canonical({k: v for k, v in body.items() if k in ADMISSION_FIELDS})
        # Signed tool-call ids are the gateway's own: an upstream sees the calls' own ids.
        forward = untranslated is not None or not carries_signed_ids(body)
        stream = bool(body.get("stream"))
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        return CanonicalRequest(
            model=model.removeprefix("models/"),
            method="streamGenerateContent" if stream else "generateContent",
            body=request,
            protocol=CHAT,
            raw=raw if forward else None,
            client_bytes=len(raw),
            untranslated=untranslated,
            prepare=self._media.resolve if _names_remote_media(request) else None,
            options={
                "model": model,
                "include_usage": include_usage,
                "created": int(time.time()),
                "thought_tag": thought_tag(body) if untranslated is None else None,
            },
        )

    def render(self, creq: CanonicalRequest, request_id: str, answers: Sequence[Answer]) -> bytes:
        kind = creq.options.get("kind")
        if kind == "embeddings":
            return orjson.dumps(render_embeddings(creq, answers[0]))
        if kind == "images":
            return orjson.dumps(render_images(answers))
        reply = answers[0].reply
        if reply.protocol == CHAT:
            return reply.body
        answer = gemini_to_chat_response(
            reply.json(),
            model=creq.options["model"],
            request_id=f"chatcmpl-{request_id}",
            created=creq.options["created"],
            thought_tag=creq.options.get("thought_tag"),
        )
        return orjson.dumps(answer)

    def encoder(self, creq: CanonicalRequest, request_id: str) -> ChatStream:
        o = creq.options
        encoder = ChatStreamEncoder(
            o["model"], f"chatcmpl-{request_id}", o["created"], o["include_usage"],
            thought_tag=o.get("thought_tag"),
        )
        return ChatStream(encoder)

    def render_error(self, err: GatewayError) -> tuple[int, bytes]:
        if isinstance(err, NotFound) and "model" in err.metadata:
            err = NotFound(
                f"The model `{err.metadata['model']}` does not exist or you do not have access to it.",
                reason="model_not_found",
            )
        return openai_status(err), orjson.dumps(openai_error_body(err))

    def render_models(
        self, endpoint: Endpoint, req: Request, models: Sequence[ModelEntry]
    ) -> dict[str, Any]:
        if endpoint.operation == "models.get":
            if not models:
                model = endpoint.params["model"]
                raise NotFound(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    reason="model_not_found",
                )
            return _model(models[0])
        return {"object": "list", "data": [_model(m) for m in models]}


def _model(entry: ModelEntry) -> dict[str, Any]:
    return {"id": entry.id, "object": "model", "created": 0, "owned_by": entry.owner}


def _names_remote_media(request: dict[str, Any]) -> bool:
    """Whether any part names media by http(s) URL (fetched after admission)."""
    return any(
        str((part.get("fileData") or {}).get("fileUri", "")).startswith(("http://", "https://"))
        for content in request.get("contents") or ()
        for part in content.get("parts") or ()
    )


def _object(raw: bytes) -> dict[str, Any]:
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise InvalidArgument("The request body must be a JSON object.")
    return data
