"""Stored responses of the Responses door, per key, in the conversation turns table
(:mod:`gemgate.store.conversations`, kind ``response``).

A turn's body holds the response object as the API returns it and the request's input
items (for ``input_items``); its history the canonical conversation through the answer,
so that a ``previous_response_id`` resolves with one read. Every function runs the
blocking store call off the event loop; another key's response is simply not found.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Engine

from gemgate.errors import InvalidArgument, NotFound
from gemgate.store import conversations
from gemgate.store.conversations import RESPONSE, Turn

MAX_PAGE = 100
DEFAULT_PAGE = 20


def not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.")


class ResponseStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def load(self, response_id: str, key_id: int) -> Turn | None:
        return await asyncio.to_thread(conversations.load, self.engine, RESPONSE, response_id, key_id)

    async def save(
        self,
        *,
        key_id: int,
        response: dict[str, Any],
        input_items: list[dict[str, Any]],
        history: dict[str, Any],
    ) -> None:
        now = datetime.now(UTC)
        turn = Turn(
            id=response["id"],
            kind=RESPONSE,
            key_id=key_id,
            model=str(response.get("model") or ""),
            previous_id=response.get("previous_response_id"),
            status=str(response.get("status") or "completed"),
            body=orjson.dumps({"response": response, "input": input_items}),
            history=orjson.dumps(history),
            created_at=now,
            expires_at=now + conversations.DEFAULT_TTL,
        )
        await asyncio.to_thread(conversations.save, self.engine, turn)

    async def body(self, response_id: str, key_id: int) -> dict[str, Any]:
        turn = await self.load(response_id, key_id)
        if turn is None:
            raise not_found(response_id)
        data = orjson.loads(turn.body)
        assert isinstance(data, dict)
        return data

    async def delete(self, response_id: str, key_id: int) -> None:
        removed = await asyncio.to_thread(
            conversations.remove, self.engine, RESPONSE, response_id, key_id
        )
        if not removed:
            raise not_found(response_id)


def page_items(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """One page of input items, as ``GET /v1/responses/{id}/input_items`` answers it
    (``order`` desc by default, ``limit``, ``after`` / ``before`` an item id)."""
    raw = query.get("limit") or str(DEFAULT_PAGE)
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise InvalidArgument.field("limit", f"must be an integer from 1 to {MAX_PAGE}")
    limit = int(raw)
    order = query.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise InvalidArgument.field("order", "must be asc or desc")
    ordered = items if order == "asc" else list(reversed(items))
    ids = [str(item.get("id")) for item in ordered]
    start, end = 0, len(ordered)
    if query.get("after"):
        if query["after"] not in ids:
            raise InvalidArgument.field("after", f"unknown item id {query['after']!r}")
        start = ids.index(query["after"]) + 1
    if query.get("before"):
        if query["before"] not in ids:
            raise InvalidArgument.field("before", f"unknown item id {query['before']!r}")
        end = ids.index(query["before"])
    page = ordered[start:end][:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0].get("id") if page else None,
        "last_id": page[-1].get("id") if page else None,
        "has_more": start + len(page) < end,
    }
