"""Build the ASGI application: shared objects are created at startup and closed at shutdown.

Nothing here is module-level state: :func:`create_app` returns a :class:`Gateway` holding
the store engine, key cache, budgets, ledger writer, token counter, providers and doors.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from gemgate.asgi import Message, Receive, Request, Scope, Send, send_bytes, send_json
from gemgate.billing.ledger import LedgerWriter
from gemgate.catalog import load_catalog
from gemgate.doors.gemini import GeminiDoor
from gemgate.errors import (
    GatewayError,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
)
from gemgate.limits.memory import MemoryBudgets, MemoryRateLimiter
from gemgate.metrics import Metrics
from gemgate.pipeline.auth import KeyCache, extract_key
from gemgate.pipeline.compose import Pipeline
from gemgate.pipeline.route import Router
from gemgate.pipeline.settle import Settler
from gemgate.providers.base import Provider
from gemgate.providers.registry import build_provider
from gemgate.routes import match
from gemgate.settings import Settings
from gemgate.store import make_engine, migrate
from gemgate.store.db import SqliteCheckpointer
from gemgate.tokens import TokenCounter, default_gguf_path

log = logging.getLogger("gemgate")

GC_YOUNG_THRESHOLD = 20_000


class Gateway:
    """The ASGI application."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.engine = make_engine(settings.database.url)
        self.providers: dict[str, Provider] = {}
        self.ledger: LedgerWriter | None = None
        self.checkpointer: SqliteCheckpointer | None = None
        self.keys: KeyCache | None = None
        self.gemini: GeminiDoor | None = None
        self.openai: Any = None
        self.admin: Any = None
        self.settler: Settler | None = None
        self.metrics: Metrics | None = None
        self.budgets: Any = None
        self.limiter: Any = None
        self._started = False

    # --- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        s = self.settings
        await asyncio.to_thread(migrate, self.engine)
        catalog = load_catalog()
        first_model = {m.provider: m.id for m in reversed(s.models)}
        for p in s.providers:
            self.providers[p.name] = build_provider(p, s.server, first_model.get(p.name, p.name))
        for provider in self.providers.values():
            await provider.start()
        types = {p.name: p.type for p in s.providers}
        router = Router.build(
            s.models, {n: (prov, types[n]) for n, prov in self.providers.items()}, catalog
        )
        self.budgets = await self._budgets()
        self.keys = KeyCache(self.engine, on_reload=self.budgets)
        await self.keys.start()
        if s.ledger.enabled:
            self.ledger = LedgerWriter(self.engine, batch_max=s.ledger.batch_max)
            self.ledger.start()
            if self.engine.dialect.name == "sqlite":
                self.checkpointer = SqliteCheckpointer(self.engine)
                self.checkpointer.start()
        self.metrics = Metrics()
        self.settler = Settler(self.ledger, self.budgets, self.metrics)
        counter = await asyncio.to_thread(lambda: TokenCounter(default_gguf_path()))
        self.limiter = self._limiter()
        pipeline = Pipeline(
            budgets=self.budgets,
            settler=self.settler,
            counter=counter,
            metrics=self.metrics,
            limiter=self.limiter,
        )
        max_body = s.server.max_body_mb * 1024 * 1024
        self.gemini = GeminiDoor(keys=self.keys, router=router, pipeline=pipeline, max_body=max_body)
        self.openai = self._optional_door(router, pipeline, max_body)
        self.admin = self._admin()
        # Everything built so far (catalog, vocabulary tables, providers) lives as long as
        # the process: keep it out of the garbage collector's full scans, whose pauses
        # would otherwise land on requests.
        gc.collect()
        gc.freeze()
        # A request allocates thousands of short-lived objects; collecting the young
        # generation every 700 allocations would run the collector several times per request.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)
        self._started = True

    async def _budgets(self) -> Any:
        if self.settings.redis.url:
            from gemgate.limits.redis import RedisBudgets

            budgets = RedisBudgets(self.settings.redis.url, prefix=self.settings.redis.prefix)
            await budgets.start()
            return budgets
        return MemoryBudgets()

    def _limiter(self) -> Any:
        redis = self.settings.redis
        if redis.url:
            from gemgate.limits.redis import RedisRateLimiter

            return RedisRateLimiter(redis.url, prefix=redis.prefix)
        return MemoryRateLimiter()

    def _optional_door(self, router: Router, pipeline: Pipeline, max_body: int) -> Any:
        try:
            from gemgate.doors.openai import OpenAIDoor
        except ImportError:
            return None
        assert self.keys is not None
        return OpenAIDoor(
            keys=self.keys,
            router=router,
            pipeline=pipeline,
            max_body=max_body,
            allow_remote_media=self.settings.server.allow_remote_media,
        )

    def _admin(self) -> Any:
        if self.settings.admin.key is None:
            return None
        try:
            from gemgate.admin.api import AdminApi
        except ImportError:
            return None
        return AdminApi(self.engine, self.settings.admin.key.reveal())

    async def shutdown(self) -> None:
        if self.settler is not None:
            await self.settler.drain()
        if self.keys is not None:
            await self.keys.aclose()
        for provider in self.providers.values():
            try:
                await provider.aclose()
            except Exception:
                log.warning("closing provider failed", exc_info=True)
        if self.ledger is not None:
            await asyncio.to_thread(self.ledger.close)
        if self.checkpointer is not None:
            await asyncio.to_thread(self.checkpointer.close)
        if self.budgets is not None:
            await self.budgets.aclose()
        if self.limiter is not None:
            await self.limiter.aclose()
        self.engine.dispose()

    # --- ASGI ----------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message: Message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.error("startup failed: %s", exc)
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = Request.from_scope(scope, receive)
        found = match(req, self.settings.server.path_prefixes)
        if found is None:
            await self._not_found(req, send)
            return
        name, p = found.name, found.params
        gemini = self.gemini
        assert gemini is not None
        if name == "gemini.call":
            await gemini.call(req, send, p["version"], p["model"], p["method"])
        elif name == "gemini.list":
            await gemini.list_models(req, send, p["version"])
        elif name == "gemini.get":
            await gemini.get_model(req, send, p["version"], p["model"])
        elif name == "health":
            await send_json(send, 200, {"status": "ok"})
        elif name == "metrics":
            await self._metrics(req, send)
        elif name.startswith("openai.") and self.openai is not None:
            await self.openai.handle(name, req, send, p)
        elif name == "admin" and self.admin is not None:
            await self.admin.handle(req, send, p["path"])
        elif name == "bad_path":
            await self._error(send, InvalidArgument(f"Invalid path: {p['reason']}."))
        elif name == "gemini.missing_method":
            await self._error(
                send,
                NotFound(f"No method given for models/{p['model']}; expected models/{{model}}:{{method}}."),
            )
        else:
            await self._not_found(req, send)

    async def _metrics(self, req: Request, send: Send) -> None:
        """Prometheus scrape: with an admin key configured, only for its holder; without
        one, only from this machine."""
        admin = self.settings.admin.key
        if admin is not None:
            given = extract_key(req.headers, req.query) or ""
            allowed = hmac.compare_digest(given.encode(), admin.reveal().encode())
        else:
            allowed = req.client_ip in ("127.0.0.1", "::1")
        if not allowed:
            await self._error(send, PermissionDenied("Metrics need the admin key."))
            return
        assert self.metrics is not None
        await send_bytes(send, 200, self.metrics.render(), CONTENT_TYPE_LATEST.encode())

    async def _not_found(self, req: Request, send: Send) -> None:
        if req.method not in ("GET", "POST"):
            await self._error(send, MethodNotAllowed(f"Method {req.method} is not allowed on {req.path}."))
            return
        await self._error(send, NotFound(f"The requested URL {req.path} was not found on this server."))

    @staticmethod
    async def _error(send: Send, exc: GatewayError) -> None:
        await send_json(send, exc.code, exc.google_body())


def create_app(settings: Settings | None = None) -> Gateway:
    return Gateway(settings or Settings.load())
