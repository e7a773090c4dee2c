"""The admin API's request log: one row per admitted request (the usage records), searched
by time, key, model, channel, door, method, status, HTTP status and error text, newest
first, in keyset pages (``before`` = the previous page's ``next``)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine

from gemgate.admin import params
from gemgate.admin.web import Call
from gemgate.billing import format_usd
from gemgate.errors import InvalidArgument, NotFound
from gemgate.store import keys as key_store
from gemgate.store import request_log
from gemgate.store.request_log import LogFilter

QUERY = (
    "key", "model", "channel", "door", "method", "status", "code", "error", "since",
    "until", "before", "limit",
)
STATUSES = (*request_log.STATUSES, "failed")


def _with_usd(row: dict[str, Any]) -> dict[str, Any]:
    row["cost_usd"] = format_usd(row["cost_nanos"])
    return row


class LogApi:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def search(self, call: Call) -> Any:
        q = call.query
        params.only(q, QUERY)
        key_id = await self._key_id(q.get("key") or None)
        f = LogFilter(
            key_id=key_id,
            model=q.get("model") or None,
            channel=q.get("channel") or None,
            door=q.get("door") or None,
            method=q.get("method") or None,
            status=params.choice(q.get("status"), "status", STATUSES),
            http_status=params.integer(q.get("code"), "code", low=100, high=599),
            error=q.get("error") or None,
            since=params.when(q.get("since"), "since"),
            until=params.when(q.get("until"), "until"),
        )
        before = params.integer(q.get("before"), "before", low=1)
        limit = params.integer(q.get("limit"), "limit", low=1, high=request_log.MAX_PAGE) or 50
        rows, after = await asyncio.to_thread(
            request_log.search, self._engine, f, before=before, limit=limit
        )
        return {"rows": [_with_usd(r) for r in rows], "next": after}

    async def get(self, call: Call) -> Any:
        params.only(call.query, ())
        record_id = params.integer(call.params["id"], "id", low=1)
        assert record_id is not None
        row = await asyncio.to_thread(request_log.record, self._engine, record_id)
        if row is None:
            raise NotFound(f"No request log entry has id {record_id}.")
        return _with_usd(row)

    async def _key_id(self, ref: str | None) -> int | None:
        if ref is None:
            return None

        def find() -> int:
            with self._engine.connect() as conn:
                return key_store.find_key(conn, ref).id

        try:
            return await asyncio.to_thread(find)
        except key_store.KeyError_ as exc:
            raise InvalidArgument.field("key", str(exc)) from None
