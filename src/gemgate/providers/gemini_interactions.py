"""Google's Interactions API as an upstream: the client's interaction request, forwarded to
``{base}/{version}/interactions`` with the upstream's model name, answered as an
interaction (unary) or its event stream.

The gateway keeps the conversation itself, so what is forwarded names no previous
interaction of the upstream's (the door has put the history in ``input``). Replies and
events carry the upstream's ``usage`` as Gemini's ``usageMetadata`` for the meter; the
``interaction.completed`` event finishes a stream. An ``error`` event raises its mapped
gateway error (as a stream's first event, the attempt loop may try elsewhere).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from gemgate.errors import BadGateway, DeadlineExceeded, upstream_error
from gemgate.providers import http
from gemgate.providers.base import Chunk, Reply, UpstreamCall
from gemgate.providers.sse import sse_events
from gemgate.translate.interactions_request import INTERACTIONS
from gemgate.translate.interactions_response import usage_metadata

# The Interactions API's string error codes, as HTTP statuses (for the gateway's mapping).
CODE_STATUS = {
    "invalid_argument": 400, "failed_precondition": 400, "out_of_range": 400,
    "unauthenticated": 401, "permission_denied": 403, "not_found": 404, "already_exists": 409,
    "aborted": 409, "resource_exhausted": 429, "too_many_requests": 429, "cancelled": 499,
    "internal": 500, "unknown": 500, "unimplemented": 501, "unavailable": 503,
    "deadline_exceeded": 504,
}


def _body(call: UpstreamCall) -> bytes:
    raw = call.raw if call.raw is not None else b"{}"
    if call.model == call.client_model:
        return raw
    data = orjson.loads(raw)
    data["model"] = call.model
    return orjson.dumps(data)


def _status(err: Any, default: int) -> int:
    code = err.get("code") if isinstance(err, dict) else None
    if isinstance(code, int):
        return code
    return CODE_STATUS.get(str(code or "").lower(), default)


def _error(session_owner: Any, status: int, body: bytes, resp: aiohttp.ClientResponse | None) -> Exception:
    try:
        parsed = orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        parsed = None
    return upstream_error(
        status, parsed, provider=session_owner.name, secrets=session_owner._secrets,
        retry_after=http.retry_after(resp) if resp is not None else None,
    )


async def _post(owner: Any, call: UpstreamCall, stream: bool) -> aiohttp.ClientResponse:
    credential = call.credential or (owner._secrets[0] if owner._secrets else None)
    headers = {"accept": "text/event-stream" if stream else "application/json"}
    if credential:
        headers["x-goog-api-key"] = credential
    url = f"{owner.base_url}/{owner.api_version}/interactions"
    return await http.send(owner.session, url, owner.name, data=_body(call), headers=headers)


async def generate(owner: Any, call: UpstreamCall) -> Reply:
    """``owner``: the Gemini provider (its session, base URL, version and keys)."""
    resp = await _post(owner, call, stream=False)
    data = await http.read(resp, owner.name)
    if resp.status != 200:
        raise _error(owner, resp.status, data, resp)
    try:
        parsed = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadGateway(f"Upstream '{owner.name}' sent an answer that is not JSON.") from None
    if not isinstance(parsed, dict):
        raise BadGateway(f"Upstream '{owner.name}' sent an unexpected answer.")
    return Reply(body=data, data=parsed, usage=usage_metadata(parsed.get("usage")), protocol=INTERACTIONS)


def _text(event: dict[str, Any]) -> str:
    delta = event.get("delta")
    if not isinstance(delta, dict):
        return ""
    if delta.get("type") == "text":
        return str(delta.get("text") or "")
    content = delta.get("content")
    if delta.get("type") == "thought_summary" and isinstance(content, dict):
        return str(content.get("text") or "")
    return ""


async def stream(owner: Any, call: UpstreamCall) -> AsyncIterator[Chunk]:
    resp = await _post(owner, call, stream=True)
    try:
        if resp.status != 200:
            raise _error(owner, resp.status, await resp.read(), resp)
        try:
            async for payload in sse_events(resp.content.iter_any()):
                if payload.strip() == b"[DONE]":
                    return
                try:
                    event = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    raise BadGateway(f"Upstream '{owner.name}' sent a malformed stream event.") from None
                if not isinstance(event, dict):
                    raise BadGateway(f"Upstream '{owner.name}' sent an unexpected stream event.")
                kind = event.get("event_type")
                if kind == "error":
                    err = event.get("error")
                    status = _status(err, 500)
                    raise upstream_error(status, {"error": err}, provider=owner.name, secrets=owner._secrets)
                usage = None
                if kind == "interaction.completed":
                    usage = usage_metadata((event.get("interaction") or {}).get("usage"))
                yield Chunk(
                    body=payload, data=event, usage=usage, text=_text(event),
                    finishing=kind == "interaction.completed", protocol=INTERACTIONS,
                )
        except TimeoutError:
            raise DeadlineExceeded(f"Upstream '{owner.name}' stopped sending its stream.") from None
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError):
            raise BadGateway(f"Upstream '{owner.name}' broke off its stream.") from None
    finally:
        resp.close()
