"""Build the ASGI application: shared objects are created at startup and closed at shutdown.

Nothing here is module-level state: :func:`create_app` returns a :class:`Gateway` holding
the store engine, key cache, budgets, ledger writer, token counter, providers, the router
with its channels, the doors and the one serve path. A request is matched in the route
table (:mod:`gemgate.routes`); a door's route goes to :class:`~gemgate.pipeline.serve.Serve`
with that door as its codec.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import nullcontext
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from gemgate import logredact
from gemgate.admin.channels import channel_report
from gemgate.admin.guard import AdminGuard
from gemgate.admin.runtime import ConsoleRuntime
from gemgate.asgi import Message, Receive, Request, Scope, Send, send_bytes, send_json
from gemgate.billing.ledger import LedgerWriter
from gemgate.catalog import load_catalog
from gemgate.doors.anthropic import AnthropicDoor
from gemgate.doors.gemini import GeminiDoor
from gemgate.doors.gemini_interactions import InteractionsDoor
from gemgate.doors.openai import OpenAIDoor
from gemgate.doors.openai_responses import ResponsesDoor
from gemgate.errors import (
    GatewayError,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
)
from gemgate.limits.memory import MemoryBudgets, MemoryRateLimiter
from gemgate.metrics import Metrics
from gemgate.pipeline.admit import Admission
from gemgate.pipeline.attempts import AttemptLoop
from gemgate.pipeline.auth import KeyCache
from gemgate.pipeline.door import Door, Endpoint
from gemgate.pipeline.live import LiveGateway
from gemgate.pipeline.live_tokens import LiveTokens
from gemgate.pipeline.route import Router
from gemgate.pipeline.serve import Serve
from gemgate.pipeline.settle import Settler
from gemgate.providers.base import Provider
from gemgate.providers.registry import build_provider
from gemgate.resources.runtime import Resources
from gemgate.routes import GEMINI_METHODS, ROUTES, RouteTable, decoded_path
from gemgate.routing import KeyPool
from gemgate.settings import ConfigError, Settings
from gemgate.store import make_engine, migrate
from gemgate.store.db import SqliteCheckpointer
from gemgate.tokens import TokenCounter, default_gguf_path
from gemgate.websocket import ClientSocket

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
        self.router: Router | None = None
        self.serve: Serve | None = None
        self.doors: dict[str, Door] = {}
        self.admin: Any = None
        self.guard = AdminGuard(None)
        self.console: ConsoleRuntime | None = None
        self.resources: Resources | None = None
        self.live: LiveGateway | None = None
        self.live_tokens: LiveTokens | None = None
        self.interactions: InteractionsDoor | None = None
        self.settler: Settler | None = None
        self.metrics: Metrics | None = None
        self.budgets: Any = None
        self.limiter: Any = None
        self.routes = RouteTable(ROUTES, settings.server.path_prefixes)

    # --- lifecycle -------------------------------------------------------------------------

    async def startup(self) -> None:
        s = self.settings
        logredact.install()
        await asyncio.to_thread(migrate, self.engine)
        try:
            catalog = load_catalog(prices_file=s.catalog.prices_file)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        first_model = {m.provider: m.id for m in reversed(s.models)}
        pools: dict[str, KeyPool | None] = {}
        for p in s.providers:
            provider, pool = build_provider(p, s, first_model.get(p.name, p.name))
            self.providers[p.name] = provider
            pools[p.name] = pool
        for provider in self.providers.values():
            await provider.start()
        self.router = router = Router.build(
            s.models, {n: (prov, pools[n]) for n, prov in self.providers.items()}, catalog, s.routing
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
        self.metrics = Metrics(
            channel_states=lambda: [(c.label, c.health.state()) for _r, c in router.channels()]
        )
        self.settler = Settler(self.ledger, self.budgets, self.metrics)
        counter = await asyncio.to_thread(lambda: TokenCounter(default_gguf_path()))
        self.limiter = self._limiter()
        self.serve = Serve(
            keys=self.keys,
            router=router,
            admission=Admission(
                budgets=self.budgets, counter=counter, limiter=self.limiter, ledger=self.ledger
            ),
            attempts=AttemptLoop(s.routing, self.metrics),
            settler=self.settler,
            counter=counter,
            max_body=s.server.max_body_mb * 1024 * 1024,
            metrics=self.metrics,
        )
        # Files, cached contents and batches (and the model calls that name them).
        self.resources = Resources(s, self.engine, self.keys, self.serve)
        self.serve.resources = self.resources
        await self.resources.start()
        self.doors = {
            "gemini": GeminiDoor(),
            "openai": OpenAIDoor(allow_remote_media=s.server.allow_remote_media),
            "anthropic": AnthropicDoor(allow_remote_media=s.server.allow_remote_media),
            "openai_responses": ResponsesDoor(self.engine, allow_remote_media=s.server.allow_remote_media),
        }
        # Live sessions (WebSocket) and their ephemeral tokens, on the same serve path.
        self.live_tokens = LiveTokens(self.serve, self.engine)
        self.live = LiveGateway(self.serve, self.live_tokens, s.live)
        # Google's Interactions API: stored interactions and background runs.
        self.interactions = InteractionsDoor(self.serve, self.engine)
        self.admin = self._admin()
        # One gate, and one count of failed attempts, for every operator endpoint.
        self.guard = self.admin.guard if self.admin is not None else AdminGuard(None)
        self.console = ConsoleRuntime(self.engine, router, self.guard, s, self.keys)
        await self.console.start(self.settler)
        # Everything built so far (catalog, vocabulary tables, providers) lives as long as
        # the process: keep it out of the garbage collector's full scans, whose pauses
        # would otherwise land on requests.
        gc.collect()
        gc.freeze()
        # A request allocates thousands of short-lived objects; collecting the young
        # generation every 700 allocations would run the collector several times per request.
        gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)

    async def _budgets(self) -> Any:
        if self.settings.redis.url:
            from gemgate.limits.redis import RedisBudgets

            budgets = RedisBudgets(
                self.settings.redis.url, prefix=self.settings.redis.prefix, engine=self.engine
            )
            await budgets.start()
            return budgets
        return MemoryBudgets()

    def _limiter(self) -> Any:
        redis = self.settings.redis
        if redis.url:
            from gemgate.limits.redis import RedisRateLimiter

            return RedisRateLimiter(redis.url, prefix=redis.prefix)
        return MemoryRateLimiter()

    def _admin(self) -> Any:
        if self.settings.admin.key is None:
            return None
        from gemgate.admin.api import AdminApi

        return AdminApi(self.engine, self.settings.admin.key.reveal())

    async def shutdown(self) -> None:
        if self.resources is not None:
            await self.resources.aclose()
        if self.console is not None:
            await self.console.aclose()
        if self.interactions is not None:
            await self.interactions.aclose()  # before the ledger drains: runs record what they cost
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
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
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

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A WebSocket path no route serves is refused at the handshake (HTTP 403), never
        left to the server's 500."""
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        raw = scope.get("raw_path")
        path = decoded_path((raw.decode("latin-1") if raw else scope["path"]).split("?", 1)[0])
        found = self.routes.match("websocket", "", path) if path is not None else None
        if found is not None and found.target == "gemini_live" and self.live is not None:
            endpoint = Endpoint(found.target, found.operation, found.params)
            await self.live(endpoint, ClientSocket(scope, receive, send))
            return
        log.info("refused a WebSocket handshake for %s: no such endpoint", scope.get("path"))
        await send({"type": "websocket.close", "code": 1008})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = Request.from_scope(scope, receive)
        path = decoded_path(req.path)
        if path is None:
            await self._error(send, InvalidArgument("Invalid path: model id must not contain '..'."))
            return
        found = self.routes.match("http", req.method, path, req)
        if found is None:
            await self._not_found(req, path, send)
            return
        target, params = found.target, found.params
        door = self.doors.get(target)
        if door is not None:
            assert self.serve is not None
            operation = found.operation
            if operation == "model.call" and params["method"] not in GEMINI_METHODS:
                await self._error(send, NotFound(
                    f"Method {params['method']} is not found for API version {params['version']}."
                ))
            elif operation == "missing_method":
                await self._error(send, NotFound(
                    f"No method given for models/{params['model']}; expected models/{{model}}:{{method}}."
                ))
            else:
                with self.resources.traffic.request() if self.resources else nullcontext():
                    await self.serve(door, Endpoint(target, operation, params), req, send)
        elif target == "resources" and self.resources is not None:
            await self.resources.door(found.operation, params, req, send)
        elif target == "interactions" and self.interactions is not None:
            await self.interactions(found.operation, params, req, send)
        elif target == "auth_tokens" and self.live_tokens is not None:
            await self.live_tokens.create(req, send)
        elif target == "health":
            await send_json(send, 200, {"status": "ok"})
        elif target == "metrics":
            await self._metrics(req, send)
        elif target == "admin":
            await self._admin_route(req, send, "/" + params.get("path", ""))
        else:
            await self._not_found(req, path, send)

    async def _admin_route(self, req: Request, send: Send, path: str) -> None:
        if self.console is not None and self.console.console.serves(path):
            await self.console.console.handle(req, send, path)
        elif path.rstrip("/") == "/channels" and req.method == "GET":
            if await self._operator(req, send, "channel health"):
                assert self.router is not None
                await send_bytes(send, 200, orjson.dumps({"channels": channel_report(self.router)}))
        elif self.admin is not None:
            await self.admin.handle(req, send, path)
        else:
            await self._not_found(req, req.path, send)

    async def _operator(self, req: Request, send: Send, what: str) -> bool:
        """Whether the admin guard lets ``req`` see ``what`` (with an admin key configured,
        only its holder, in a header; without one, only this machine); if not, the refusal
        has been sent."""
        try:
            self.guard.check(req, what)
        except GatewayError as exc:
            await self._error(send, exc)
            return False
        return True

    async def _metrics(self, req: Request, send: Send) -> None:
        """Prometheus scrape, for operators only."""
        if await self._operator(req, send, "metrics"):
            assert self.metrics is not None
            await send_bytes(send, 200, self.metrics.render(), CONTENT_TYPE_LATEST.encode())

    async def _not_found(self, req: Request, path: str, send: Send) -> None:
        allowed = self.routes.allows("http", path)
        if allowed and req.method not in allowed:
            await self._error(send, MethodNotAllowed(f"Method {req.method} is not allowed on {req.path}."))
            return
        if req.method not in ("GET", "POST"):
            await self._error(send, MethodNotAllowed(f"Method {req.method} is not allowed on {req.path}."))
            return
        await self._error(send, NotFound(f"The requested URL {req.path} was not found on this server."))

    @staticmethod
    async def _error(send: Send, exc: GatewayError) -> None:
        await send_json(send, exc.code, exc.google_body(), exc.headers())


def create_app(settings: Settings | None = None) -> Gateway:
    return Gateway(settings or Settings.load())
