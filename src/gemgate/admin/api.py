"""The admin JSON API, for holders of the admin key (``[admin] key = "env:VAR"``).

``GET /admin/usage`` with the query parameters ``key``, ``model``, ``since``, ``until`` and
``group_by`` (day, model or key) answers ``{"rows": [...]}``: the same rows, with the same
numbers, as ``gemgate usage --format json``; every cost both as ``cost_nanos`` and as a
decimal ``cost_usd`` string.

The admin key is sent as ``Authorization: Bearer KEY`` or ``x-goog-api-key: KEY`` (never
in the URL), and checked by :class:`~gemgate.admin.guard.AdminGuard`. Errors use Google's
envelope: no key 401 UNAUTHENTICATED, a wrong key 403 PERMISSION_DENIED, too many refused
keys from one address 429 RESOURCE_EXHAUSTED, a bad parameter 400 INVALID_ARGUMENT naming
it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from gemgate.admin.guard import AdminGuard
from gemgate.asgi import Request, Send, send_json
from gemgate.billing import format_usd
from gemgate.errors import (
    GatewayError,
    Internal,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
)
from gemgate.store import usage as usage_store

log = logging.getLogger("gemgate.admin")

USAGE_PARAMS = frozenset({"key", "model", "since", "until", "group_by"})


def usage_rows(engine: Engine, **filters: Any) -> list[dict[str, Any]]:
    """The usage report with each row's cost also as a decimal USD string."""
    rows = usage_store.report(engine, **filters)
    for row in rows:
        row["cost_usd"] = format_usd(row["cost_nanos"])
    return rows


def _when(query: dict[str, str], name: str) -> datetime | None:
    text = query.get(name)
    if text is None or text == "":
        return None
    try:
        return usage_store.parse_when(text)
    except ValueError:
        raise InvalidArgument.field(
            name, f"must be an ISO date or date-time, got {text!r}"
        ) from None


class AdminApi:
    def __init__(self, engine: Engine, admin_key: str) -> None:
        if not admin_key:
            raise ValueError("the admin key must not be empty")
        self._engine = engine
        self.guard = AdminGuard(admin_key)  # shared with the other admin endpoints

    async def handle(self, req: Request, send: Send, path: str) -> None:
        """Serve ``/admin{path}``."""
        try:
            self.guard.check(req)
            if path.rstrip("/") != "/usage":
                raise NotFound(f"The requested URL {req.path} was not found on this server.")
            if req.method != "GET":
                raise MethodNotAllowed(f"Method {req.method} is not allowed on {req.path}.")
            rows = await self._usage(req.query)
            await send_json(send, 200, {"rows": rows})
        except GatewayError as exc:
            await send_json(send, exc.code, exc.google_body(), exc.headers())
        except Exception:
            log.exception("admin request %s failed", req.path)
            err = Internal("Internal error while reading the ledger.")
            await send_json(send, err.code, err.google_body())

    async def _usage(self, query: dict[str, str]) -> list[dict[str, Any]]:
        for name in query:
            if name not in USAGE_PARAMS:
                raise InvalidArgument.field(
                    name, f"unknown parameter; expected one of {', '.join(sorted(USAGE_PARAMS))}"
                )
        group_by = query.get("group_by") or None
        if group_by is not None and group_by not in usage_store.GROUP_BY:
            raise InvalidArgument.field(
                "group_by", f"must be one of {', '.join(usage_store.GROUP_BY)}, got {group_by!r}"
            )
        since, until = _when(query, "since"), _when(query, "until")
        return await asyncio.to_thread(
            usage_rows,
            self._engine,
            key=query.get("key") or None,
            model=query.get("model") or None,
            since=since,
            until=until,
            group_by=group_by,
        )
