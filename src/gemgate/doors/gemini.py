"""The Gemini door: Google's generativelanguage REST protocol, as its clients expect it.

``POST {prefix}/{version}/models/{model}:{method}`` for generateContent,
streamGenerateContent (SSE with ``alt=sse``, a streamed JSON array without), countTokens,
embedContent and batchEmbedContents; ``GET {prefix}/{version}/models[/{model}]``. Every
failure is rendered in Google's error envelope. The canonical form is this protocol, so
replies and chunks go out as the bytes they came in.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import orjson

from gemgate.asgi import JSON_TYPE, SSE_TYPE, Request
from gemgate.doors.sse import JsonArrayFramer, sse_event
from gemgate.errors import GatewayError, InvalidArgument, NotFound
from gemgate.pipeline.auth import extract_key
from gemgate.pipeline.door import Answer, Endpoint, ModelEntry, ModelLookup
from gemgate.types import parse_request
from gemgate.types.canonical import GEMINI, CanonicalRequest, Chunk

METHODS = frozenset(
    {"generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"}
)
LISTED_METHODS = ("generateContent", "countTokens", "embedContent", "batchEmbedContents")
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def model_resource(entry: ModelEntry) -> dict[str, Any]:
    info = entry.info
    methods = [m for m in LISTED_METHODS if info.supports(m)]
    data: dict[str, Any] = {
        "name": f"models/{entry.id}",
        "baseModelId": entry.id,
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


class GeminiStream:
    """SSE (``alt=sse``) or Google's streamed JSON array."""

    __slots__ = ("_framer", "_sse", "content_type")

    def __init__(self, sse: bool) -> None:
        self._sse = sse
        self._framer = JsonArrayFramer()
        self.content_type = SSE_TYPE if sse else JSON_TYPE

    def chunk(self, chunk: Chunk) -> bytes:
        return sse_event(chunk.body) if self._sse else self._framer.item(chunk.body)

    def end(self) -> bytes:
        return b"" if self._sse else self._framer.end()

    def error(self, err: GatewayError) -> bytes:
        body = err.google_body()
        return sse_event(orjson.dumps(body)) if self._sse else self._framer.error(body)


class GeminiDoor:
    name = "gemini"

    def credential(self, req: Request) -> str | None:
        return extract_key(req.headers, req.query)

    async def parse(
        self, req: Request, endpoint: Endpoint, body: bytes, lookup: ModelLookup
    ) -> CanonicalRequest:
        method = endpoint.params["method"]
        return CanonicalRequest(
            model=endpoint.params["model"],
            method=method,  # type: ignore[arg-type]
            body=parse_request(method, body),
            protocol=GEMINI,
            raw=body,
            client_bytes=len(body),
            options={"sse": req.query.get("alt") == "sse"},
        )

    def render(self, creq: CanonicalRequest, request_id: str, answers: Sequence[Answer]) -> bytes:
        return answers[0].reply.body

    def encoder(self, creq: CanonicalRequest, request_id: str) -> GeminiStream:
        return GeminiStream(bool(creq.options.get("sse")))

    def render_error(self, err: GatewayError) -> tuple[int, bytes]:
        return err.code, orjson.dumps(err.google_body())

    def render_models(
        self, endpoint: Endpoint, req: Request, models: Sequence[ModelEntry]
    ) -> dict[str, Any]:
        version = endpoint.params.get("version", "v1beta")
        if endpoint.operation == "models.get":
            if not models:
                model = endpoint.params["model"]
                raise NotFound(f"models/{model} is not found for API version {version}.")
            return model_resource(models[0])
        size = _page_size(req.query.get("pageSize"))
        token = req.query.get("pageToken")
        offset = _page_offset(token) if token else 0
        page = models[offset : offset + size]
        out: dict[str, Any] = {"models": [model_resource(m) for m in page]}
        if offset + size < len(models):
            out["nextPageToken"] = _page_token(offset + size)
        return out
