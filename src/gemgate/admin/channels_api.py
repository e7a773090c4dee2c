"""The admin API's channels and providers: live health, and turning a channel or an
upstream key off and on without a restart (saved for every replica, see
:mod:`gemgate.admin.switches`)."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Engine

from gemgate.admin import params
from gemgate.admin.channels import channel_report
from gemgate.admin.switches import Switches
from gemgate.admin.web import Call
from gemgate.errors import InvalidArgument, NotFound
from gemgate.pipeline.route import Router
from gemgate.store import channel_states as store


def provider_report(router: Router) -> list[dict[str, Any]]:
    """Each provider with its channels and its upstream keys (labels only, never values)."""
    out: dict[str, dict[str, Any]] = {}
    for row in channel_report(router):
        entry = out.setdefault(
            row["provider"], {"name": row["provider"], "channels": [], "keys": row["keys"]}
        )
        if row["channel"] not in entry["channels"]:
            entry["channels"].append(row["channel"])
    return list(out.values())


class ChannelsApi:
    def __init__(self, engine: Engine, router: Router, switches: Switches) -> None:
        self._engine = engine
        self._router = router
        self._switches = switches

    async def list(self, call: Call) -> Any:
        params.only(call.query, ())
        return {
            "channels": channel_report(self._router),
            "providers": provider_report(self._router),
        }

    async def set_channel(self, call: Call) -> Any:
        body = await call.json()
        params.only(body, ("channel", "enabled"), "field")
        label = params.text(body, "channel", max_len=400)
        enabled = self._enabled(body)
        labels = {c.label for _r, c in self._router.channels()}
        if label is None:
            raise InvalidArgument.field("channel", "is required: a channel label such as google/gemini-2.5-flash")
        if label not in labels:
            raise NotFound(f"No channel is labelled {label!r}.")
        await asyncio.to_thread(store.set_enabled, self._engine, store.CHANNEL, label, enabled)
        await self._switches.refresh()
        return {"channel": label, "enabled": enabled}

    async def set_key(self, call: Call) -> Any:
        body = await call.json()
        params.only(body, ("provider", "key", "enabled"), "field")
        provider = params.text(body, "provider")
        label = params.text(body, "key")
        enabled = self._enabled(body)
        if provider is None or label is None:
            raise InvalidArgument.field(
                "provider" if provider is None else "key", "is required"
            )
        known = {
            (c.provider_name, k.label)
            for _r, c in self._router.channels()
            if c.keys is not None
            for k in c.keys.keys
        }
        if (provider, label) not in known:
            raise NotFound(f"Provider {provider!r} has no upstream key labelled {label!r}.")
        name = store.key_name(provider, label)
        await asyncio.to_thread(store.set_enabled, self._engine, store.KEY, name, enabled)
        await self._switches.refresh()
        return {"provider": provider, "key": label, "enabled": enabled}

    @staticmethod
    def _enabled(body: dict[str, Any]) -> bool:
        enabled = params.flag(body, "enabled")
        if enabled is None:
            raise InvalidArgument.field("enabled", "is required: true or false")
        return enabled
