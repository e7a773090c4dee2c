"""The Anthropic door: the Messages API (``/v1/messages``, ``/v1/messages/count_tokens``) and
its model listing, in Anthropic's protocol, as the official SDKs and Claude Code call it.

Keys come as ``x-api-key`` or ``Authorization: Bearer``; ``anthropic-version`` and
``anthropic-beta`` are accepted, and travel with the client's bytes to an Anthropic upstream. Requests are translated into the canonical Gemini form
(:mod:`gemgate.translate.anthropic_request`) and served like any other; the client's bytes
travel along, so a channel whose upstream speaks the Messages API gets them unchanged and
its answer (or its events) goes back as it came. ``count_tokens`` is counted locally and
never billed. Errors use Anthropic's envelope, also mid-stream (an ``error`` event).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from gemgate.asgi import SSE_TYPE, Request
from gemgate.doors.anthropic_errors import anthropic_error_body, anthropic_status
from gemgate.doors.remote_media import RemoteMedia
from gemgate.errors import GatewayError, InvalidArgument, NotFound
from gemgate.pipeline.auth import extract_key
from gemgate.pipeline.door import Answer, Endpoint, ModelEntry, ModelLookup
from gemgate.translate.anthropic_common import MESSAGES
from gemgate.translate.anthropic_request import Untranslatable, messages_to_gemini
from gemgate.translate.anthropic_response import gemini_to_message
from gemgate.translate.anthropic_stream import Event, MessageStreamEncoder
from gemgate.types import normalise, parse_json
from gemgate.types.canonical import CanonicalRequest, Chunk
from gemgate.types.validate import check_generate

DEFAULT_PAGE = 20
MAX_PAGE = 1000
CREATED_AT = "1970-01-01T00:00:00Z"  # the gateway does not know when a model was released


# The client headers an Anthropic upstream sees with the client's bytes; no other travels.
FORWARDED = ("anthropic-beta", "anthropic-version")


def forwarded_headers(req: Request) -> dict[str, str]:
    out: dict[str, str] = {}
    for name in FORWARDED:
        value = req.headers.get(name)
        if value is not None and value.strip():
            out[name] = value.strip()
    return out


def sse_events(events: Sequence[Event]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n" for name, data in events
    )


class MessagesStream:
    """Canonical chunks become Anthropic's events; passthrough events go out as the upstream
    framed them."""

    content_type = SSE_TYPE

    def __init__(self, encoder: MessageStreamEncoder) -> None:
        self._encoder = encoder
        self._passthrough = False

    def chunk(self, chunk: Chunk) -> bytes:
        if chunk.protocol == MESSAGES:
            self._passthrough = True
            return chunk.body
        return sse_events(self._encoder.feed(chunk.json()))

    def end(self) -> bytes:
        return b"" if self._passthrough else sse_events(self._encoder.finish())

    def error(self, err: GatewayError) -> bytes:
        return sse_events([("error", anthropic_error_body(err))])


class AnthropicDoor:
    name = "anthropic"

    def __init__(self, *, allow_remote_media: bool = False) -> None:
        self._media = RemoteMedia(enabled=allow_remote_media)

    def credential(self, req: Request) -> str | None:
        key = req.headers.get("x-api-key")
        if key is not None and key.strip():
            return key.strip()
        return extract_key(req.headers, req.query)

    async def parse(
        self, req: Request, endpoint: Endpoint, body: bytes, lookup: ModelLookup
    ) -> CanonicalRequest:
        if endpoint.operation not in ("messages", "count_tokens"):
            raise NotFound(f"Unknown endpoint {endpoint.operation}.")
        count = endpoint.operation == "count_tokens"
        data = parse_json(body)
        if not isinstance(data, dict):
            raise InvalidArgument("The request body must be a JSON object.")
        untranslated: InvalidArgument | None = None
        try:
            translated = messages_to_gemini(data, count_only=count)
        except Untranslatable as exc:
            # Only an Anthropic upstream can serve it: admit on a lenient reading.
            untranslated = exc
            translated = messages_to_gemini(data, count_only=count, lenient=True)
        request = normalise("GenerateContentRequest", translated)
        check_generate(request)
        model = str(data["model"])
        if count:
            return CanonicalRequest(model=model, method="countTokens", body=request, options={"model": model})
        stream = data.get("stream", False)
        if not isinstance(stream, bool):
            raise InvalidArgument.field("stream", "must be a boolean")
        prepare = None
        if _names_remote_media(request):
            if self._media.enabled:
                prepare = self._media.resolve  # fetched after admission
            elif untranslated is None:
                # An Anthropic upstream fetches them itself; no other channel can have them.
                untranslated = InvalidArgument.field(
                    "messages", "media URLs are not fetched by this gateway; send the data as base64"
                )
        return CanonicalRequest(
            model=model,
            method="streamGenerateContent" if stream else "generateContent",
            body=request,
            protocol=MESSAGES,
            raw=body,
            client_bytes=len(body),
            untranslated=untranslated,
            prepare=prepare,
            options={"model": model},
            headers=forwarded_headers(req),
        )

    def render(self, creq: CanonicalRequest, request_id: str, answers: Sequence[Answer]) -> bytes:
        reply = answers[0].reply
        if creq.method == "countTokens":
            return orjson.dumps({"input_tokens": int(reply.json().get("totalTokens") or 0)})
        if reply.protocol == MESSAGES:
            return reply.body
        message = gemini_to_message(reply.json(), model=creq.options["model"], message_id=f"msg_{request_id}")
        return orjson.dumps(message)

    def encoder(self, creq: CanonicalRequest, request_id: str) -> MessagesStream:
        return MessagesStream(MessageStreamEncoder(creq.options["model"], f"msg_{request_id}"))

    def render_error(self, err: GatewayError) -> tuple[int, bytes]:
        return anthropic_status(err), orjson.dumps(anthropic_error_body(err))

    def render_models(
        self, endpoint: Endpoint, req: Request, models: Sequence[ModelEntry]
    ) -> dict[str, Any]:
        if endpoint.operation == "models.get":
            if not models:
                model = endpoint.params["model"]
                raise NotFound(f"model: {model}", metadata={"model": model})
            return _model(models[0])
        page, has_more = _page(list(models), req.query)
        return {
            "data": [_model(m) for m in page],
            "has_more": has_more,
            "first_id": page[0].id if page else None,
            "last_id": page[-1].id if page else None,
        }


def _page(models: list[ModelEntry], query: dict[str, str]) -> tuple[list[ModelEntry], bool]:
    raw = query.get("limit") or str(DEFAULT_PAGE)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidArgument.field("limit", f"must be an integer from 1 to {MAX_PAGE}")
    limit = int(raw)
    ids = [m.id for m in models]

    def position(name: str) -> int:
        value = query[name]
        if value not in ids:
            raise InvalidArgument.field(name, f"unknown model id {value!r}")
        return ids.index(value)

    if query.get("before_id"):
        end = position("before_id")
        start = max(0, end - limit)
        return models[start:end], start > 0
    start = position("after_id") + 1 if query.get("after_id") else 0
    return models[start : start + limit], start + limit < len(models)


def _model(entry: ModelEntry) -> dict[str, Any]:
    return {
        "type": "model",
        "id": entry.id,
        "display_name": entry.info.display_name or entry.id,
        "created_at": CREATED_AT,
    }


def _names_remote_media(request: dict[str, Any]) -> bool:
    """Whether any part names media by http(s) URL (fetched after admission)."""
    return any(
        str((part.get("fileData") or {}).get("fileUri", "")).startswith(("http://", "https://"))
        for content in request.get("contents") or ()
        for part in content.get("parts") or ()
    )
