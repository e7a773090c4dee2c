"""The admin API's keys: create (the key shown once), list, read, change, revoke, top up.

Every change goes through :mod:`gemgate.store.keys`, which bumps the keys change counter
as the CLI does, so every replica's key cache reloads within its poll interval (250 ms);
this replica's reloads before the answer, so a key created here works at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from gemgate.admin import params
from gemgate.admin.web import Answer, Call, json_answer
from gemgate.billing import format_usd
from gemgate.errors import InvalidArgument, NotFound
from gemgate.store import keys as key_store
from gemgate.store.keys import KeyRecord

log = logging.getLogger("gemgate.admin")

CREATE_FIELDS = ("name", "models", "allowed_ips", "expires_at", "budget_usd", "rpm", "log_bodies")
UPDATE_FIELDS = CREATE_FIELDS


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def key_view(r: KeyRecord, now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    if r.revoked_at is not None:
        status = "revoked"
    elif r.expires_at is not None and r.expires_at <= now:
        status = "expired"
    else:
        status = "active"
    return {
        "id": r.id,
        "name": r.name,
        "prefix": r.prefix,
        "status": status,
        "models": list(r.models) if r.models is not None else None,
        "allowed_ips": list(r.allowed_ips) if r.allowed_ips is not None else None,
        "expires_at": _iso(r.expires_at),
        "revoked_at": _iso(r.revoked_at),
        "created_at": _iso(r.created_at),
        "budget_nanos": r.budget_nanos,
        "budget_usd": format_usd(r.budget_nanos) if r.budget_nanos is not None else None,
        "spent_nanos": r.spent_nanos,
        "spent_usd": format_usd(r.spent_nanos),
        "rpm": r.rpm,
        "log_bodies": r.log_bodies,
    }


class KeysApi:
    def __init__(
        self,
        engine: Engine,
        model_ids: Callable[[], Collection[str]],
        reload: Callable[[], Awaitable[None]],
    ) -> None:
        self._engine = engine
        self._model_ids = model_ids
        self._reload = reload

    async def list(self, call: Call) -> Any:
        params.only(call.query, ())
        records = await asyncio.to_thread(key_store.list_keys, self._engine)
        now = datetime.now(UTC)
        return {"keys": [key_view(r, now) for r in records]}

    async def get(self, call: Call) -> Any:
        return key_view(await self._run(key_store.get_key, self._key_id(call)))

    async def create(self, call: Call) -> Answer:
        body = await call.json()
        params.only(body, CREATE_FIELDS, "field")
        name = params.text(body, "name")
        if name is None:
            raise InvalidArgument.field("name", "is required")
        values = self._settings(body)
        try:
            plain, record = await asyncio.to_thread(
                key_store.create_key,
                self._engine,
                name,
                models=values.get("models"),
                allowed_ips=values.get("allowed_ips"),
                expires_at=values.get("expires_at"),
                budget_nanos=values.get("budget_nanos"),
                rpm=values.get("rpm"),
                log_bodies=bool(values.get("log_bodies")),
            )
        except key_store.KeyError_ as exc:
            raise InvalidArgument.field("name", str(exc)) from None
        await self._reloaded()
        return json_answer({"key": plain, "record": key_view(record)}, 201)

    async def update(self, call: Call) -> Any:
        key_id = self._key_id(call)
        body = await call.json()
        params.only(body, UPDATE_FIELDS, "field")
        values = self._settings(body)
        if "name" in body:
            name = params.text(body, "name")
            if name is None:
                raise InvalidArgument.field("name", "must be a non-empty string")
            values["name"] = name
        try:
            record = await self._run(key_store.update_key, key_id, **values)
        except key_store.KeyError_ as exc:
            raise InvalidArgument.field("name", str(exc)) from None
        return key_view(record)

    async def revoke(self, call: Call) -> Any:
        key_id = self._key_id(call)
        params.only(await call.json(), (), "field")
        await self._run(key_store.revoke_key, key_id)
        return key_view(await self._run(key_store.get_key, key_id))

    async def top_up(self, call: Call) -> Any:
        key_id = self._key_id(call)
        body = await call.json()
        params.only(body, ("usd",), "field")
        nanos = params.usd_nanos(body.get("usd"), "usd", positive=True)
        if nanos is None:
            raise InvalidArgument.field("usd", "is required: the USD to add, as a decimal string")
        return key_view(await self._run(key_store.top_up, key_id, nanos))

    # --- helpers -------------------------------------------------------------------------

    def _settings(self, body: dict[str, Any]) -> dict[str, Any]:
        """The settings present in ``body``, checked (null clears a setting)."""
        out: dict[str, Any] = {}
        if "models" in body:
            models = params.strings(body, "models")
            known = self._model_ids()
            for i, model in enumerate(models or ()):
                if model not in known:
                    raise InvalidArgument.field(
                        f"models[{i}]", f"{model!r} is not a deployed model id"
                    )
            out["models"] = models
        if "allowed_ips" in body:
            out["allowed_ips"] = params.networks(body, "allowed_ips")
        if "expires_at" in body:
            out["expires_at"] = params.when(body["expires_at"], "expires_at")
        if "budget_usd" in body:
            out["budget_nanos"] = params.usd_nanos(body["budget_usd"], "budget_usd")
        if "rpm" in body:
            out["rpm"] = params.integer(body["rpm"], "rpm", low=0, high=10_000_000) or None
        if "log_bodies" in body:
            out["log_bodies"] = bool(params.flag(body, "log_bodies"))
        return out

    @staticmethod
    def _key_id(call: Call) -> int:
        key_id = params.integer(call.params["id"], "id", low=1)
        assert key_id is not None
        return key_id

    async def _run(self, fn: Any, *args: Any, **kw: Any) -> KeyRecord:
        try:
            record: KeyRecord = await asyncio.to_thread(fn, self._engine, *args, **kw)
        except key_store.KeyError_ as exc:
            if "already exists" in str(exc):
                raise
            raise NotFound(f"No key has id {args[0]}.") from None
        if fn is not key_store.get_key:
            await self._reloaded()
        return record

    async def _reloaded(self) -> None:
        try:
            await self._reload()
        except Exception:  # the poll will catch up
            log.warning("reloading keys after a change failed", exc_info=True)
