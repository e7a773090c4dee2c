"""The admin API's usage: the ledger summed by key, model, channel, day or hour (UTC),
as JSON or CSV, with the numbers ``gemgate usage`` gives."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine

from gemgate.admin import params
from gemgate.admin.usage_report import report_rows, to_csv
from gemgate.admin.web import NO_STORE, Answer, Call
from gemgate.store import usage as usage_store

QUERY = ("key", "model", "channel", "since", "until", "group_by", "format")


class UsageApi:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def report(self, call: Call) -> Any:
        q = call.query
        params.only(q, QUERY)
        group_by = params.choice(q.get("group_by"), "group_by", usage_store.GROUP_BY)
        fmt = params.choice(q.get("format"), "format", ("json", "csv")) or "json"
        rows = await asyncio.to_thread(
            report_rows,
            self._engine,
            key=q.get("key") or None,
            model=q.get("model") or None,
            channel=q.get("channel") or None,
            since=params.when(q.get("since"), "since"),
            until=params.when(q.get("until"), "until"),
            group_by=group_by,
        )
        if fmt == "csv":
            name = f"gemgate-usage{'-by-' + group_by if group_by else ''}.csv"
            return Answer(
                200,
                to_csv(rows, group_by).encode(),
                b"text/csv; charset=utf-8",
                [NO_STORE, (b"content-disposition", f'attachment; filename="{name}"'.encode())],
            )
        return {"rows": rows}
