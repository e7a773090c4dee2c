"""Cached contents: kept by the gateway, copied to the Google channels that use them.

A cache is created for a model. The gateway keeps its contents (system instruction,
contents, tools, tool config) and, on the model's first Google channel that takes it, a
copy upstream (its tokens counted there); on a model without a Google channel the tokens
are counted locally. A request naming the cache goes first to a channel holding a copy;
a Google channel without one (the holder is down, or the copy expired) gets a new copy
made on the spot, and a channel without caches gets the contents in the request itself.
Storage is billed per token-hour (:mod:`.cache_billing`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import orjson

from gemgate.errors import (
    BadGateway,
    GatewayError,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    UpstreamError,
)
from gemgate.pipeline.authorize import check_model
from gemgate.resources import names
from gemgate.resources.binding import Binder, file_id_of, replace_parts
from gemgate.resources.copies import (
    FileCopies,
    Upstreams,
    credential_of,
    find_holder,
    first_key,
    holder_of,
    speaks_resources,
)
from gemgate.routing import Selector
from gemgate.store import caches_sql
from gemgate.store.caches_sql import CacheCopy, CacheRow
from gemgate.store.files_sql import FileRow
from gemgate.store.keys import KeyRecord
from gemgate.tokens import Reference, TokenCounter
from gemgate.types.schema import REQUEST_MESSAGE
from gemgate.types.validate import check_generate, normalise

log = logging.getLogger("gemgate.caches")

DEFAULT_TTL = timedelta(hours=1)
CONTENT_FIELDS = ("contents", "systemInstruction", "tools", "toolConfig")


@dataclass(slots=True)
class BoundCache:
    """A cache a request names, as the binder and resolver need it."""

    row: CacheRow
    body: dict[str, Any]
    files: dict[str, FileRow]
    reference: Reference
    channels: list[str] = field(default_factory=list)  # labels of channels holding a copy


class CacheService:
    def __init__(
        self,
        engine: Any,
        router: Any,
        binder: Binder,
        file_copies: FileCopies,
        upstreams: Upstreams,
        counter: TokenCounter,
    ) -> None:
        self.engine = engine
        self.router = router
        self.binder = binder
        self.file_copies = file_copies
        self.upstreams = upstreams
        self.counter = counter
        self._selector = Selector()
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.on_delete: Callable[[str], None] | None = None  # a deleted cache's storage is due
        binder.find_cache = self.find
        binder.resolve_cache = self.resolve

    async def _db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, self.engine, *args)

    # --- create --------------------------------------------------------------------------

    def route_of(self, key: KeyRecord, model: Any, where: str = "model") -> Any:
        if not isinstance(model, str) or not model:
            raise InvalidArgument.field(where, "required: the model the cache is for, as models/{model}")
        route = self.router.resolve(model.removeprefix("models/"), "createCachedContent")
        check_model(key, route.model_id)
        return route

    async def create(self, key: KeyRecord, data: dict[str, Any]) -> CacheRow:
        route = self.route_of(key, data.get("model"))
        content = {k: data[k] for k in CONTENT_FIELDS if data.get(k) is not None}
        if not content.get("contents") and not content.get("systemInstruction"):
            raise InvalidArgument.field("contents", "a cache needs contents or a systemInstruction")
        body = normalise(REQUEST_MESSAGE["generateContent"], content)
        if body.get("contents"):
            check_generate(body)
        at = names.now()
        expires = expiry(data, at) or at + DEFAULT_TTL
        plan = await self.binder.plan(key, route, {**body, "contents": body.get("contents") or []})
        files = plan.files if plan is not None else {}
        row = CacheRow(
            id=names.new_id(), key_id=key.id, model=route.model_id,
            display_name=data.get("displayName"), body=orjson.dumps(body).decode(),
            tokens=0, created_at=at, updated_at=at, expires_at=expires, billed_until=at,
            deleted_at=None,
        )
        bound = BoundCache(row, body, files, Reference("TEXT", 0, 0))
        tokens, made = await self._first_copy(route, bound)
        if tokens is None:
            refs = self.binder.references(plan, body) if plan is not None else {}
            tokens = (await self.counter.count_request_async(body, refs)).total
        values = {f: getattr(row, f) for f in CacheRow.__dataclass_fields__} | {"tokens": tokens}
        await self._db(caches_sql.create, values)
        for copy in made:
            await self._db(caches_sql.save_copy, row.id, copy)
        return CacheRow(**values)

    async def _first_copy(self, route: Any, bound: BoundCache) -> tuple[int | None, list[CacheCopy]]:
        """Make the cache on the first Google channel that takes it: its token count and
        the copy (no count: the model's preferred channel keeps no caches, so the gateway
        alone holds it)."""
        failure: GatewayError | None = None
        for channel in self._selector.order(route.channels):
            if not speaks_resources(channel):
                return None, []
            try:
                copy, tokens = await self._make_copy(bound, channel, first_key(channel))
            except UpstreamError as exc:
                failure = exc
                log.info("creating the cache on %s failed: %s", channel.label, exc.message)
                continue
            return tokens, [copy]
        if failure is not None and all(speaks_resources(c) for c in route.channels):
            raise failure
        return None, []

    async def _make_copy(self, bound: BoundCache, channel: Any, key: Any) -> tuple[CacheCopy, int]:
        body = dict(bound.body)
        if bound.files:
            uris = {i: await self.file_copies.uri(channel, key, row) for i, row in bound.files.items()}

            def upstream(part: dict[str, Any]) -> dict[str, Any] | None:
                data = part.get("fileData")
                ident = file_id_of(data.get("fileUri")) if isinstance(data, dict) else None
                if ident is None or ident not in uris or not isinstance(data, dict):
                    return None
                return {**part, "fileData": {**data, "fileUri": uris[ident]}}

            body = replace_parts(body, upstream)
        body["model"] = f"models/{channel.upstream_model}"
        body["expireTime"] = names.timestamp(bound.row.expires_at)
        if bound.row.display_name:
            body["displayName"] = bound.row.display_name
        made = await self.upstreams.client(channel.provider).create_cache(credential_of(key), body)
        name = made.get("name")
        if not isinstance(name, str):
            raise BadGateway(f"Upstream '{channel.provider_name}' gave the cache no name.")
        usage = made.get("usageMetadata") or {}
        tokens = int(usage.get("totalTokenCount") or 0)
        copy = CacheCopy(holder_of(channel, key), channel.label, name, bound.row.expires_at)
        return copy, tokens

    # --- reads and changes ---------------------------------------------------------------

    async def get(self, key: KeyRecord, cache_id: str) -> CacheRow:
        row = await self._db(caches_sql.owned, key.id, cache_id, names.now())
        if row is None:
            raise NotFound(f"CachedContent cachedContents/{cache_id} is not found.")
        return row

    async def page(self, key: KeyRecord, size: int, after: Any) -> tuple[list[CacheRow], bool]:
        rows = await self._db(caches_sql.page, key.id, names.now(), size, after)
        return rows[:size], len(rows) > size

    async def update(self, key: KeyRecord, cache_id: str, data: dict[str, Any]) -> CacheRow:
        row = await self.get(key, cache_id)
        extra = set(data) - {"ttl", "expireTime", "expire_time", "name"}
        if extra:
            raise InvalidArgument.field(sorted(extra)[0], "only the expiry (ttl or expireTime) can be updated")
        at = names.now()
        expires = expiry(data, at)
        if expires is None:
            raise InvalidArgument.field("ttl", "give ttl or expireTime")
        await self._db(caches_sql.set_expiry, row.id, expires, at)
        for copy in await self._db(caches_sql.copies, row.id):
            await self._update_copy(row.id, copy, expires)
        return await self.get(key, cache_id)

    async def _update_copy(self, cache_id: str, copy: CacheCopy, expires: Any) -> None:
        found = self._channel(copy)
        try:
            if found is None:
                raise NotFound("channel gone")
            channel, key = found
            client = self.upstreams.client(channel.provider)
            await client.update_cache(credential_of(key), copy.upstream_name, names.timestamp(expires))
            await self._db(caches_sql.set_copy_expiry, cache_id, copy.holder, expires)
        except GatewayError as exc:
            # A copy whose expiry cannot follow is dropped: a new one is made when needed.
            log.info("cache copy %s on %s not updated (%s): dropped", copy.upstream_name, copy.holder, exc.message)
            await self._db(caches_sql.drop_copy, cache_id, copy.holder)

    async def delete(self, key: KeyRecord, cache_id: str) -> None:
        await self.get(key, cache_id)
        await self._db(caches_sql.mark_deleted, key.id, cache_id, names.now())
        if self.on_delete is not None:
            self.on_delete(cache_id)

    async def drop_copies(self, cache_id: str) -> None:
        """Delete the upstream copies of an ended cache (best effort: they expire anyway)."""
        for copy in await self._db(caches_sql.copies, cache_id):
            found = self._channel(copy)
            if found is None:
                continue
            channel, key = found
            try:
                await self.upstreams.client(channel.provider).delete(credential_of(key), copy.upstream_name)
            except GatewayError as exc:
                log.info("could not delete cache copy %s: %s", copy.upstream_name, exc.message)

    def _channel(self, copy: CacheCopy) -> tuple[Any, Any] | None:
        return find_holder(self.router, copy.channel, copy.holder)

    # --- requests that name a cache ------------------------------------------------------

    async def find(self, key: KeyRecord, route: Any, name: str) -> BoundCache:
        cache_id = names.resource_id(name, "cachedContents")
        if cache_id is None or not names.GATEWAY_ID.fullmatch(cache_id):
            raise InvalidArgument.field(
                "cachedContent", f"{name} is not a cached content of this gateway (create it here first)"
            )
        row = await self._db(caches_sql.owned, key.id, cache_id, names.now())
        if row is None:
            raise PermissionDenied(f"CachedContent not found (or permission denied): {name}")
        if row.model != route.model_id:
            raise InvalidArgument.field(
                "cachedContent", f"{name} was made for models/{row.model}, not models/{route.model_id}"
            )
        body = orjson.loads(row.body)
        plan = await self.binder.plan(key, route, {"contents": body.get("contents") or []})
        at = names.now()
        copies = await self._db(caches_sql.copies, row.id)
        live = [c.channel for c in copies if names.aware(c.expires_at) > at]
        return BoundCache(row, body, plan.files if plan else {}, Reference("TEXT", row.tokens, row.tokens), live)

    async def resolve(self, cache: BoundCache, channel: Any, key: Any, request: dict[str, Any]) -> dict[str, Any]:
        if speaks_resources(channel):
            return {**request, "cachedContent": await self._copy_name(cache, channel, key)}
        merged = {k: v for k, v in request.items() if k != "cachedContent"}
        merged["contents"] = list(cache.body.get("contents") or []) + list(request.get("contents") or [])
        for name in ("systemInstruction", "tools", "toolConfig"):
            if cache.body.get(name) is not None:
                merged[name] = cache.body[name]
        return merged

    async def _copy_name(self, cache: BoundCache, channel: Any, key: Any) -> str:
        holder = holder_of(channel, key)
        at = names.now()
        for copy in await self._db(caches_sql.copies, cache.row.id):
            if copy.holder == holder and names.aware(copy.expires_at) > at:
                return copy.upstream_name
        lock = self._locks.setdefault((cache.row.id, holder), asyncio.Lock())
        async with lock:
            for copy in await self._db(caches_sql.copies, cache.row.id):
                if copy.holder == holder and names.aware(copy.expires_at) > at:
                    return copy.upstream_name
            log.info("making a copy of cachedContents/%s on %s", cache.row.id, channel.label)
            made, _tokens = await self._make_copy(cache, channel, key)
            await self._db(caches_sql.save_copy, cache.row.id, made)
        self._locks.pop((cache.row.id, holder), None)
        return made.upstream_name


def expiry(data: dict[str, Any], at: Any) -> Any:
    """The expiry ``data`` asks for (``ttl`` or ``expireTime``), or None."""
    ttl = data.get("ttl")
    when = data.get("expireTime", data.get("expire_time"))
    if ttl is not None and when is not None:
        raise InvalidArgument.field("ttl", "give either ttl or expireTime, not both")
    if ttl is not None:
        span = names.parse_duration(ttl, "ttl")
        if span.total_seconds() <= 0:
            raise InvalidArgument.field("ttl", "must be positive")
        return at + span
    if when is not None:
        expires = names.parse_timestamp(when, "expireTime")
        if expires <= at:
            raise InvalidArgument.field("expireTime", "must be in the future")
        return expires
    return None
