"""The operator's console: the web pages at ``/admin/`` and the JSON API at ``/admin/api/``.

Without an admin key configured the console is off: the page says so, and every API call
is answered 404 saying so. With one, :class:`~gemgate.admin.gate.Gate` decides who may
call (the admin key in a header, or a signed-in browser's session with its CSRF token),
and refuses whatever another site sends. Every error is Google's JSON envelope.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Engine

from gemgate.admin import assets
from gemgate.admin.api_routes import api_routes
from gemgate.admin.channels_api import ChannelsApi
from gemgate.admin.gate import SESSION_LIFETIME, Gate, set_cookie
from gemgate.admin.guard import AdminGuard
from gemgate.admin.keys_api import KeysApi
from gemgate.admin.log_api import LogApi
from gemgate.admin.openapi import describe
from gemgate.admin.switches import Switches
from gemgate.admin.usage_api import UsageApi
from gemgate.admin.web import Answer, ApiRoute, Call, error_answer, json_answer, send_answer
from gemgate.asgi import Request, Send
from gemgate.errors import GatewayError, Internal, MethodNotAllowed, NotFound
from gemgate.pipeline.auth import KeyCache
from gemgate.pipeline.route import Router

log = logging.getLogger("gemgate.admin")

OFF = (
    "The admin console is off: no admin key is configured. Set [admin] key = \"env:VAR\" "
    "in the config and restart."
)


class Console:
    def __init__(
        self,
        engine: Engine,
        router: Router,
        switches: Switches,
        guard: AdminGuard,
        keys: KeyCache,
        enabled: bool,
    ) -> None:
        self.enabled = enabled
        self.gate = Gate(engine, guard)
        self._assets = assets.load_assets()
        self.routes: tuple[ApiRoute, ...] = api_routes(
            session=self,
            keys=KeysApi(engine, lambda: {r.model_id for r in router.routes()}, keys.refresh),
            channels=ChannelsApi(engine, router, switches),
            usage=UsageApi(engine),
            log=LogApi(engine),
            openapi=self,
        )
        self._openapi = describe(self.routes)

    @staticmethod
    def serves(path: str) -> bool:
        """Whether ``/admin{path}`` is the console's (the rest of /admin/ is older)."""
        return path in ("", "/", "/index.html") or path.startswith(("/api/", "/static/"))

    async def handle(self, req: Request, send: Send, path: str) -> None:
        try:
            answer = await self._answer(req, path)
        except GatewayError as exc:
            answer = error_answer(exc)
        except Exception:
            log.exception("console request %s failed", req.path)
            answer = error_answer(Internal("Internal error in the admin API."))
        await send_answer(send, answer)

    async def _answer(self, req: Request, path: str) -> Answer:
        if path.startswith("/api/"):
            if not self.enabled:
                raise NotFound(OFF, reason="CONSOLE_OFF")
            return await self._api(req, path[4:])
        if req.method != "GET":
            raise MethodNotAllowed(f"Method {req.method} is not allowed on {req.path}.")
        name = "index.html" if path in ("", "/", "/index.html") else path[len("/static/") :]
        if not self.enabled:
            name = "off.html"
        asset = self._assets.get(name)
        if asset is None or (name == "off.html" and self.enabled):
            raise NotFound(f"The requested URL {req.path} was not found on this server.")
        return assets.serve(asset, req, 200 if self.enabled else 404)

    async def _api(self, req: Request, sub: str) -> Answer:
        route, params, allowed = self._match(req.method, sub)
        if route is None:
            if allowed:
                raise MethodNotAllowed(f"Method {req.method} is not allowed on {req.path}.")
            raise NotFound(f"The requested URL {req.path} was not found on this server.")
        if route.signin:
            return await route.handler(Call(req, params))
        token = await self.gate.admit(req)
        result = await route.handler(Call(req, params, token))
        if isinstance(result, Answer):
            return result
        return json_answer(result, route.status)

    def _match(self, method: str, sub: str) -> tuple[ApiRoute | None, dict[str, str], bool]:
        allowed = False
        for route in self.routes:
            m = route.regex.fullmatch(sub)
            if m is None:
                continue
            if route.method == method:
                return route, m.groupdict(), True
            allowed = True
        return None, {}, allowed

    # --- session and description handlers ------------------------------------------------

    async def sign_in(self, call: Call) -> Answer:
        token, session = await self.gate.sign_in(call.req)
        cookie = set_cookie(call.req, token, int(SESSION_LIFETIME.total_seconds()))
        return json_answer(_session_view(session), 200, [cookie])

    async def session(self, call: Call) -> Any:
        if call.session_token is None:
            return {"csrf": None, "expires_at": None}
        session = await self.gate.session(call.session_token)
        if session is None:  # ended between the gate and here
            raise NotFound("The console session has ended.")
        return _session_view(session)

    async def sign_out(self, call: Call) -> Answer:
        if call.session_token is not None:
            await self.gate.sign_out(call.session_token)
        return json_answer({"signed_out": True}, 200, [set_cookie(call.req, "", 0)])

    async def openapi(self, call: Call) -> Any:
        return self._openapi


def _session_view(session: Any) -> dict[str, Any]:
    return {"csrf": session.csrf, "expires_at": session.expires_at.isoformat().replace("+00:00", "Z")}

