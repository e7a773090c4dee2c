"""Batches run by a Google channel: submitted there, polled, and their results fetched.

The requests go upstream with the gateway's files replaced by the channel's copies: inline
as Google takes them, or (for a batch made from a JSONL file) as a JSONL file uploaded to
the channel's project, each line keyed by the item's index. The results come back inline
(``inlinedResponses``, in order) or as a responses file (lines keyed as sent).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from gemgate.errors import BadGateway, GatewayError, UpstreamError
from gemgate.resources.binding import Binder
from gemgate.resources.copies import (
    Upstreams,
    credential_of,
    first_key,
    holder_of,
    speaks_resources,
)
from gemgate.routing import Selector
from gemgate.store.batches_sql import ItemRow
from gemgate.store.keys import KeyRecord

log = logging.getLogger("gemgate.batches")

METHODS = {"generate": "batchGenerateContent", "embed": "asyncBatchEmbedContent"}


@dataclass(frozen=True, slots=True)
class Submitted:
    channel: str
    holder: str
    upstream_name: str


@dataclass(frozen=True, slots=True)
class Result:
    idx: int
    response: dict[str, Any] | None
    error: dict[str, Any] | None


class UpstreamBatches:
    def __init__(self, upstreams: Upstreams, binder: Binder) -> None:
        self.upstreams = upstreams
        self.binder = binder
        self._selector = Selector()

    async def submit(
        self,
        key: KeyRecord,
        route: Any,
        kind: str,
        display_name: str,
        items: list[ItemRow],
        from_file: bool,
    ) -> Submitted | None:
        """Run the batch on the model's first Google channel that takes it; None when the
        model's preferred channel is not Google's (the gateway runs the batch itself)."""
        failure: GatewayError | None = None
        for channel in self._selector.order(route.channels):
            if not speaks_resources(channel):
                return None
            upstream_key = first_key(channel)
            try:
                name = await self._submit(key, route, channel, upstream_key, kind, display_name, items, from_file)
            except UpstreamError as exc:
                failure = exc
                log.info("submitting a batch to %s failed: %s", channel.label, exc.message)
                continue
            return Submitted(channel.label, holder_of(channel, upstream_key), name)
        if failure is not None and all(speaks_resources(c) for c in route.channels):
            raise failure
        return None

    async def _requests(
        self, key: KeyRecord, route: Any, channel: Any, upstream_key: Any, items: list[ItemRow]
    ) -> list[tuple[int, dict[str, Any], Any]]:
        out = []
        for item in items:
            stored = orjson.loads(item.request)
            request = stored["request"]
            plan = await self.binder.plan(key, route, request)
            if plan is not None:
                request = await self.binder.resolve(plan, channel, upstream_key, request)
            out.append((item.idx, request, stored.get("metadata")))
        return out

    async def _submit(
        self,
        key: KeyRecord,
        route: Any,
        channel: Any,
        upstream_key: Any,
        kind: str,
        display_name: str,
        items: list[ItemRow],
        from_file: bool,
    ) -> str:
        client = self.upstreams.client(channel.provider)
        credential = credential_of(upstream_key)
        requests = await self._requests(key, route, channel, upstream_key, items)
        model = f"models/{channel.upstream_model}"
        if from_file:
            lines = [
                orjson.dumps({"key": str(idx), "request": {**req, "model": model}}) + b"\n"
                for idx, req, _meta in requests
            ]

            async def content() -> AsyncIterator[bytes]:
                for line in lines:
                    yield line

            uploaded = await client.upload(
                credential, display_name=f"{display_name} input", mime_type="application/jsonl",
                size=sum(len(line) for line in lines), content=content(),
            )
            config: dict[str, Any] = {"fileName": uploaded["name"]}
        else:
            entries = []
            for _idx, req, meta in requests:
                entry: dict[str, Any] = {"request": {**req, "model": model}}
                if meta is not None:
                    entry["metadata"] = meta
                entries.append(entry)
            config = {"requests": {"requests": entries}}
        body = {"batch": {"displayName": display_name, "inputConfig": config}}
        op = await client.create_batch(credential, channel.upstream_model, METHODS[kind], body)
        name = op.get("name")
        if not isinstance(name, str) or not name.startswith("batches/"):
            raise BadGateway(f"Upstream '{client.name}' answered the batch without a name.")
        return name

    async def poll(self, channel: Any, upstream_key: Any, name: str) -> dict[str, Any]:
        return await self.upstreams.client(channel.provider).get_operation(credential_of(upstream_key), name)

    async def cancel(self, channel: Any, upstream_key: Any, name: str) -> None:
        await self.upstreams.client(channel.provider).cancel_batch(credential_of(upstream_key), name)

    async def results(self, channel: Any, upstream_key: Any, op: dict[str, Any]) -> list[Result]:
        output = op.get("response") or (op.get("metadata") or {}).get("output") or {}
        inline = output.get("inlinedResponses") or output.get("inlinedEmbedContentResponses")
        if isinstance(inline, dict):
            entries = inline.get("inlinedResponses") or []
            return [_result(i, e) for i, e in enumerate(entries) if isinstance(e, dict)]
        name = output.get("responsesFile")
        if not isinstance(name, str):
            raise BadGateway("The upstream batch finished without results.")
        data = await self.upstreams.client(channel.provider).download(credential_of(upstream_key), name)
        out = []
        for line in data.splitlines():
            if not line.strip():
                continue
            entry = orjson.loads(line)
            key = entry.get("key")
            if isinstance(key, str) and key.isdigit():
                out.append(_result(int(key), entry))
        return out


def _result(idx: int, entry: dict[str, Any]) -> Result:
    error = entry.get("error") or entry.get("status")
    response = entry.get("response")
    if isinstance(response, dict) and not error:
        return Result(idx, response, None)
    return Result(idx, None, error if isinstance(error, dict) else {"code": 500, "message": "no result"})
