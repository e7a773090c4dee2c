"""Ephemeral tokens for the Live API: minted by the gateway for the calling key
(``POST /v1alpha/auth_tokens``, as ``client.auth_tokens.create`` sends it) and accepted
only to start Live sessions (``BidiGenerateContentConstrained``).

A token starts at most ``uses`` sessions (0: no limit; default 1), none after
``newSessionExpireTime`` (default a minute from now), and its sessions end at
``expireTime`` (default 30 minutes from now; both at most 20 hours ahead). Sessions are
billed to the key that minted it, and end with it: a revoked key's tokens open nothing.
A token may lock its sessions' setup: ``bidiGenerateContentSetup`` without ``fieldMask``
is the whole setup (the client's own setup counts only for a model the token leaves
open); with ``fieldMask`` (comma-separated field paths) just those fields take the
token's values and the client sets the rest.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from gemgate.asgi import JSON_TYPE, Request, Send, send_bytes
from gemgate.errors import GatewayError, InvalidArgument, as_gateway_error
from gemgate.pipeline.auth import extract_key
from gemgate.pipeline.authorize import check_key, check_model
from gemgate.pipeline.context import new_request_id
from gemgate.pipeline.serve import Serve
from gemgate.store import live_tokens
from gemgate.store.live_tokens import LiveToken
from gemgate.types import parse_json

DEFAULT_LIFETIME = timedelta(minutes=30)
DEFAULT_NEW_SESSION_WINDOW = timedelta(seconds=60)
MAX_AHEAD = timedelta(hours=20)
UNLIMITED_USES = 2**31 - 1
_FIELDS = {"uses", "expireTime", "newSessionExpireTime", "bidiGenerateContentSetup", "fieldMask"}
MAX_BODY = 1024 * 1024


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _time(value: Any, field: str, now: datetime, default: timedelta) -> datetime:
    if value is None:
        return now + default
    if not isinstance(value, str):
        raise InvalidArgument.field(field, "must be an RFC 3339 timestamp string")
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidArgument.field(field, f"is not an RFC 3339 timestamp: {value!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when <= now:
        raise InvalidArgument.field(field, "must be in the future")
    if when > now + MAX_AHEAD:
        raise InvalidArgument.field(field, "must be less than 20 hours in the future")
    return when


class LiveTokens:
    """The ``auth_tokens`` endpoint, through the serve path's key cache and router."""

    def __init__(self, serve: Serve, engine: Any) -> None:
        self._serve = serve
        self._engine = engine

    async def create(self, req: Request, send: Send) -> None:
        request_id = new_request_id()
        try:
            body = await self._mint(req)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            err: GatewayError = as_gateway_error(exc, request_id)
            await send_bytes(send, err.code, orjson.dumps(err.google_body()), JSON_TYPE, err.headers())
            return
        await send_bytes(send, 200, orjson.dumps(body), JSON_TYPE)

    async def _mint(self, req: Request) -> dict[str, Any]:
        key = await self._serve.keys.authenticate(extract_key(req.headers, req.query))
        check_key(key, req.client_ip)
        data = parse_json(await req.body(MAX_BODY))
        if not isinstance(data, dict):
            raise InvalidArgument("Invalid JSON payload received. Expected a JSON object.")
        fields = {_camel(k): v for k, v in data.items()}
        for name in fields:
            if name not in _FIELDS:
                raise InvalidArgument(f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.')
        now = datetime.now(UTC)
        uses = fields.get("uses", 1)
        if isinstance(uses, str) and uses.isdigit():
            uses = int(uses)
        if isinstance(uses, bool) or not isinstance(uses, int) or uses < 0:
            raise InvalidArgument.field("uses", "must be a non-negative integer (0: no limit)")
        expire = _time(fields.get("expireTime"), "expireTime", now, DEFAULT_LIFETIME)
        new_session = _time(
            fields.get("newSessionExpireTime"), "newSessionExpireTime", now, DEFAULT_NEW_SESSION_WINDOW
        )
        setup = fields.get("bidiGenerateContentSetup")
        if setup is not None:
            if not isinstance(setup, dict):
                raise InvalidArgument.field("bidiGenerateContentSetup", "must be an object")
            model = setup.get("model")
            if model is not None:
                if not isinstance(model, str):
                    raise InvalidArgument.field("bidiGenerateContentSetup.model", "must be a string")
                name = model.removeprefix("models/")
                route = self._serve.router.resolve(name, "bidiGenerateContent", "v1alpha")
                check_model(key, route.model_id)
        mask = fields.get("fieldMask")
        if mask is not None and not isinstance(mask, str):
            raise InvalidArgument.field("fieldMask", "must be a comma-separated string of field paths")
        token = await asyncio.to_thread(
            live_tokens.mint,
            self._engine,
            key.id,
            uses=uses or UNLIMITED_USES,
            expire_time=expire,
            new_session_expire_time=new_session,
            setup=orjson.dumps(setup).decode() if setup is not None else None,
            field_mask=mask,
        )
        return {
            "name": token,
            "uses": uses,
            "expireTime": expire.isoformat().replace("+00:00", "Z"),
            "newSessionExpireTime": new_session.isoformat().replace("+00:00", "Z"),
        }

    async def start_session(self, token: str) -> LiveToken | None:
        return await asyncio.to_thread(live_tokens.start_session, self._engine, token)


# --- locked setups -------------------------------------------------------------------------


def _camel_keys(message: dict[str, Any]) -> dict[str, Any]:
    """The setup's own field names (and its generationConfig's) in camelCase."""
    out = {_camel(k): v for k, v in message.items()}
    config = out.get("generationConfig")
    if isinstance(config, dict):
        out["generationConfig"] = {_camel(k): v for k, v in config.items()}
    return out


def constrain(message: dict[str, Any], token: LiveToken) -> dict[str, Any]:
    """The setup a session with ``token`` runs: the client's ``message`` with the token's
    locked fields applied."""
    if token.setup is None:
        return message
    locked = _camel_keys(orjson.loads(token.setup))
    client = _camel_keys(message)
    if token.field_mask is None:
        merged = copy.deepcopy(locked)
        if "model" not in merged and "model" in client:
            merged["model"] = client["model"]
        return merged
    merged = copy.deepcopy(client)
    for raw_path in token.field_mask.split(","):
        path = [_camel(p) for p in raw_path.strip().split(".") if p]
        if not path:
            continue
        source: Any = locked
        for part in path:
            source = source.get(part) if isinstance(source, dict) else None
        target = merged
        for part in path[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        if source is None:
            target.pop(path[-1], None)
        else:
            target[path[-1]] = copy.deepcopy(source)
    return merged
