"""The console's parts that live as long as the gateway: the channel switches poller, the
request-log pruner, the body log and the console itself, started and closed together."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine

from gemgate.admin.bodies import BodyLog, Redactor
from gemgate.admin.console import Console
from gemgate.admin.guard import AdminGuard
from gemgate.admin.retention import Pruner
from gemgate.admin.switches import Switches
from gemgate.pipeline.auth import KeyCache
from gemgate.pipeline.route import Router
from gemgate.pipeline.settle import Settler
from gemgate.settings import Settings


class ConsoleRuntime:
    def __init__(
        self, engine: Engine, router: Router, guard: AdminGuard, settings: Settings, keys: KeyCache
    ) -> None:
        admin_key = settings.admin.key
        secrets = {s for _r, c in router.channels() if c.keys is not None for s in c.keys.secrets}
        if admin_key is not None:
            secrets.add(admin_key.reveal())
        self.switches = Switches(engine, router)
        self.pruner = Pruner(engine, settings.admin.log_retention_days)
        self.bodies = BodyLog(engine, Redactor(tuple(sorted(secrets))))
        self.console = Console(
            engine, router, self.switches, guard, keys, enabled=admin_key is not None
        )

    async def start(self, settler: Settler) -> None:
        await self.switches.start()
        self.bodies.start()
        settler.bodies = self.bodies
        self.pruner.start()

    async def aclose(self) -> None:
        await self.switches.aclose()
        await self.pruner.aclose()
        await asyncio.to_thread(self.bodies.close)
