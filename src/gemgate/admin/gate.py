"""Who may use the admin API, and from where.

Two kinds of caller pass:

- a program sending the admin key in a header, checked by
  :class:`~gemgate.admin.guard.AdminGuard` (constant time, refusals logged without what was
  sent, ten refusals a minute from one address and it answers 429);
- a browser signed in to the console: it traded the admin key (in a header, once) for a
  session cookie (HttpOnly, SameSite=Strict, Path=/admin, Secure over https) naming a
  server-side session that ends after :data:`SESSION_LIFETIME`. Each state-changing call
  must also carry the session's CSRF token in ``x-gemgate-csrf`` and the page's Origin.

Whoever calls, a request that another site made is refused: an ``Origin`` other than the
gateway's own, or ``Sec-Fetch-Site`` saying cross-site or same-site.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from datetime import timedelta
from http.cookies import CookieError, SimpleCookie

from sqlalchemy import Engine

from gemgate.admin.guard import AdminGuard, presented_key
from gemgate.admin.web import CSRF_HEADER
from gemgate.asgi import Request
from gemgate.errors import PermissionDenied, Unauthenticated
from gemgate.store import sessions as session_store
from gemgate.store.sessions import Session

log = logging.getLogger("gemgate.admin")

COOKIE = "gemgate_session"
SESSION_LIFETIME = timedelta(hours=12)


def own_origin(req: Request) -> str:
    scheme = req.scope.get("scheme", "http")
    return f"{scheme}://{req.headers.get('host', '').lower()}"


def check_same_site(req: Request) -> None:
    """Refuse a request another site's page made."""
    origin = req.headers.get("origin")
    if origin is not None and origin.lower() != own_origin(req):
        raise PermissionDenied(
            "Cross-site requests to the admin API are refused.", reason="CROSS_SITE_REQUEST"
        )
    if req.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        raise PermissionDenied(
            "Cross-site requests to the admin API are refused.", reason="CROSS_SITE_REQUEST"
        )


def session_cookie(req: Request) -> str | None:
    raw = req.headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(COOKIE)
    return morsel.value if morsel is not None and morsel.value else None


def set_cookie(req: Request, token: str, max_age: int) -> tuple[bytes, bytes]:
    secure = "; Secure" if req.scope.get("scheme") == "https" else ""
    value = f"{COOKIE}={token}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    return b"set-cookie", value.encode()


class Gate:
    def __init__(self, engine: Engine, guard: AdminGuard) -> None:
        self._engine = engine
        self.guard = guard

    async def admit(self, req: Request) -> str | None:
        """Let ``req`` through or raise the refusal; returns the session's cookie token when
        a signed-in browser made it (None for an admin-key caller)."""
        check_same_site(req)
        if presented_key(req) is not None:
            self.guard.check(req, "the admin API")
            return None
        token = session_cookie(req)
        if token is None:
            raise Unauthenticated(
                "The admin API needs the admin key (in 'Authorization: Bearer KEY' or "
                "'x-goog-api-key: KEY') or a console session: sign in at /admin/.",
                reason="ADMIN_SESSION_MISSING",
            )
        session = await asyncio.to_thread(session_store.find, self._engine, token)
        if session is None:
            raise Unauthenticated(
                "The console session has ended or expired: sign in again.",
                reason="ADMIN_SESSION_EXPIRED",
            )
        if req.method not in ("GET", "HEAD"):
            self._check_csrf(req, session)
        return token

    @staticmethod
    def _check_csrf(req: Request, session: Session) -> None:
        if req.headers.get("origin") is None:
            raise PermissionDenied(
                "A console call that changes something must carry its Origin header.",
                reason="ORIGIN_MISSING",
            )
        given = req.headers.get(CSRF_HEADER, "")
        if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
            raise PermissionDenied(
                f"The console's CSRF token is missing or wrong (header {CSRF_HEADER}).",
                reason="CSRF_TOKEN_INVALID",
            )

    async def sign_in(self, req: Request) -> tuple[str, Session]:
        """Trade the admin key (in a header) for a new session."""
        check_same_site(req)
        self.guard.check(req, "the console")
        token, session = await asyncio.to_thread(
            session_store.create, self._engine, SESSION_LIFETIME
        )
        log.info("console session opened for client %s", req.client_ip or "?")
        return token, session

    async def session(self, token: str) -> Session | None:
        return await asyncio.to_thread(session_store.find, self._engine, token)

    async def sign_out(self, token: str) -> None:
        await asyncio.to_thread(session_store.end, self._engine, token)
