"""Batch endpoints: ``POST {v}/models/{m}:batchGenerateContent`` and
``:asyncBatchEmbedContent`` answer an Operation named ``batches/{id}``;
``GET {v}/batches[/{id}]``, ``POST {v}/batches/{id}:cancel``, ``DELETE {v}/batches/{id}``;
``GET {v}/models/{m}/operations/{id}`` (no operation of that kind is kept: NOT_FOUND)."""

from __future__ import annotations

from typing import Any

from gemgate.doors.gemini_resources import (
    Call,
    ResourceDoor,
    page_size,
    page_token,
    read_page_token,
)
from gemgate.errors import InvalidArgument, NotFound
from gemgate.resources import names
from gemgate.resources.batches import BatchService

DEFAULT_PAGE, MAX_PAGE = 50, 1000
#: Inline requests are capped as Google caps them.
BODY_LIMIT = 20 << 20


class BatchesEndpoints:
    def __init__(self, batches: BatchService, door: ResourceDoor) -> None:
        self.batches = batches
        door.add("batches.generate", self.generate, "/{version}/models/")
        door.add("batches.embed", self.embed, "/{version}/models/")
        door.add("batches.list", self.list, "/{version}/batches")
        door.add("batches.get", self.get, "/{version}/batches")
        door.add("batches.cancel", self.cancel, "/{version}/batches")
        door.add("batches.delete", self.delete, "/{version}/batches")
        door.add("operations.get", self.operation, "/{version}/models/")

    def _id(self, call: Call) -> str:
        ident = names.resource_id(call.params["batch"], "batches")
        if ident is None:
            raise InvalidArgument.field("name", f"batches/{call.params['batch']} is not a batch name")
        return ident

    async def _create(self, call: Call, kind: str) -> None:
        assert call.key is not None
        body = await call.body(BODY_LIMIT)
        row = await self.batches.create(call.key, call.params["model"], kind, body)
        await call.json(200, await self.batches.operation(row))

    async def generate(self, call: Call) -> None:
        await self._create(call, "generate")

    async def embed(self, call: Call) -> None:
        await self._create(call, "embed")

    async def list(self, call: Call) -> None:
        assert call.key is not None
        size = page_size(call.req.query.get("pageSize"), DEFAULT_PAGE, MAX_PAGE)
        after = read_page_token(call.req.query.get("pageToken"))
        position = (names.parse_timestamp(after[0], "pageToken"), after[1]) if after else None
        rows, more = await self.batches.page(call.key, size, position)
        out: dict[str, Any] = {}
        if rows:
            out["operations"] = [await self.batches.operation(r) for r in rows]
        if more:
            out["nextPageToken"] = page_token((names.timestamp(rows[-1].created_at), rows[-1].id))
        await call.json(200, out)

    async def get(self, call: Call) -> None:
        assert call.key is not None
        row = await self.batches.get(call.key, self._id(call))
        await call.json(200, await self.batches.operation(row))

    async def cancel(self, call: Call) -> None:
        assert call.key is not None
        await self.batches.cancel(call.key, self._id(call))
        await call.json(200, {})

    async def delete(self, call: Call) -> None:
        assert call.key is not None
        await self.batches.delete(call.key, self._id(call))
        await call.json(200, {})

    async def operation(self, call: Call) -> None:
        name = f"models/{call.params['model']}/operations/{call.params['operation']}"
        raise NotFound(f"Operation {name} is not found.")
