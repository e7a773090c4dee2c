"""cachedContents endpoints: ``POST|GET {v}/cachedContents``, ``GET|PATCH|DELETE
{v}/cachedContents/{id}`` (PATCH changes only the expiry; the SDK sends ``{"ttl": "600s"}``
without an updateMask)."""

from __future__ import annotations

from typing import Any

from gemgate.doors.gemini_resources import (
    Call,
    ResourceDoor,
    field,
    page_size,
    page_token,
    read_page_token,
)
from gemgate.errors import InvalidArgument
from gemgate.resources import names
from gemgate.resources.caches import CacheService
from gemgate.store.caches_sql import CacheRow

FIELDS = ("model", "contents", "systemInstruction", "tools", "toolConfig", "ttl", "expireTime", "displayName")
DEFAULT_PAGE, MAX_PAGE = 50, 1000


def cache_resource(row: CacheRow) -> dict[str, Any]:
    data: dict[str, Any] = {"name": f"cachedContents/{row.id}"}
    if row.display_name:
        data["displayName"] = row.display_name
    data |= {
        "model": f"models/{row.model}",
        "createTime": names.timestamp(row.created_at),
        "updateTime": names.timestamp(row.updated_at),
        "expireTime": names.timestamp(row.expires_at),
        "usageMetadata": {"totalTokenCount": row.tokens},
    }
    return data


class CachesEndpoints:
    def __init__(self, caches: CacheService, door: ResourceDoor) -> None:
        self.caches = caches
        door.add("caches.create", self.create, "/{version}/cachedContents")
        door.add("caches.list", self.list, "/{version}/cachedContents")
        door.add("caches.get", self.get, "/{version}/cachedContents")
        door.add("caches.update", self.update, "/{version}/cachedContents")
        door.add("caches.delete", self.delete, "/{version}/cachedContents")

    @staticmethod
    def _fields(body: dict[str, Any]) -> dict[str, Any]:
        known = {name: field(body, name) for name in FIELDS}
        unknown = set(body) - set(FIELDS) - {_snake(n) for n in FIELDS} - {"name", "usageMetadata"}
        if unknown:
            name = sorted(unknown)[0]
            raise InvalidArgument.field(name, f'Invalid JSON payload received. Unknown name "{name}"')
        return {k: v for k, v in known.items() if v is not None}

    def _id(self, call: Call) -> str:
        ident = names.resource_id(call.params["cache"], "cachedContents")
        if ident is None:
            raise InvalidArgument.field("name", f"cachedContents/{call.params['cache']} is not a cache name")
        return ident

    async def create(self, call: Call) -> None:
        assert call.key is not None
        row = await self.caches.create(call.key, self._fields(await call.body(20 << 20)))
        await call.json(200, cache_resource(row))

    async def list(self, call: Call) -> None:
        assert call.key is not None
        size = page_size(call.req.query.get("pageSize"), DEFAULT_PAGE, MAX_PAGE)
        after = read_page_token(call.req.query.get("pageToken"))
        position = (names.parse_timestamp(after[0], "pageToken"), after[1]) if after else None
        rows, more = await self.caches.page(call.key, size, position)
        out: dict[str, Any] = {}
        if rows:
            out["cachedContents"] = [cache_resource(r) for r in rows]
        if more:
            out["nextPageToken"] = page_token((names.timestamp(rows[-1].created_at), rows[-1].id))
        await call.json(200, out)

    async def get(self, call: Call) -> None:
        assert call.key is not None
        await call.json(200, cache_resource(await self.caches.get(call.key, self._id(call))))

    async def update(self, call: Call) -> None:
        assert call.key is not None
        body = await call.body()
        changes = {k: v for k, v in (("ttl", field(body, "ttl")), ("expireTime", field(body, "expireTime"))) if v is not None}
        other = set(body) - {"ttl", "expireTime", "expire_time", "name"}
        if other:
            changes[sorted(other)[0]] = True  # refused by the service, naming the field
        row = await self.caches.update(call.key, self._id(call), changes)
        await call.json(200, cache_resource(row))

    async def delete(self, call: Call) -> None:
        assert call.key is not None
        await self.caches.delete(call.key, self._id(call))
        await call.json(200, {})


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)
