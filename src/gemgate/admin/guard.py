"""The admin key's gate, for the admin API and the metrics endpoint.

The key is accepted only in a header (``Authorization: Bearer KEY`` or
``x-goog-api-key: KEY``), never in the URL, where proxies and access logs keep it. It is
compared in constant time. Every refusal is logged with the client's address (never with
what it sent), and a client address that fails :data:`MAX_FAILURES` times within
:data:`WINDOW_S` seconds is answered 429 until the window ends, whatever it sends, so the
key cannot be guessed at speed. Without an admin key configured, only this machine passes.
"""

from __future__ import annotations

import hmac
import logging
import math
import time
from collections.abc import Callable

from gemgate.asgi import Request
from gemgate.errors import PermissionDenied, ResourceExhausted, Unauthenticated

log = logging.getLogger("gemgate.admin")

MAX_FAILURES = 10
WINDOW_S = 60.0
# Addresses remembered at most; beyond that, windows that have ended are forgotten first.
MAX_TRACKED = 10_000
LOOPBACK = frozenset({"127.0.0.1", "::1"})


def presented_key(req: Request) -> str | None:
    """The key sent in ``Authorization: Bearer`` or ``x-goog-api-key`` (never the URL)."""
    auth = req.headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = req.headers.get("x-goog-api-key")
    return key.strip() if key and key.strip() else None


class AdminGuard:
    def __init__(
        self,
        admin_key: str | None,
        *,
        max_failures: int = MAX_FAILURES,
        window_s: float = WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = admin_key.encode() if admin_key else None
        self._max_failures = max_failures
        self._window_s = window_s
        self._clock = clock
        self._failures: dict[str, tuple[float, int]] = {}  # address -> (window start, count)

    def check(self, req: Request, what: str = "the admin API") -> None:
        """Return when ``req`` may use ``what``; else raise the error to answer with."""
        address = req.client_ip or "?"
        now = self._clock()
        started, count = self._failures.get(address, (now, 0))
        if now - started >= self._window_s:
            started, count = now, 0
        if count >= self._max_failures:
            wait = max(1, math.ceil(started + self._window_s - now))
            raise ResourceExhausted(
                f"Too many refused admin keys from this address; retry in {wait} s.",
                reason="ADMIN_RATE_LIMITED",
                retry_after=wait,
            )
        if self._key is None:
            if address in LOOPBACK:
                return
            self._refuse(address, started, count, now, "not from this machine")
            raise PermissionDenied(
                f"Without an admin key configured, {what} answers only on this machine."
            )
        given = presented_key(req)
        if given is None:
            self._refuse(address, started, count, now, "no key in a header")
            hint = " (not in the URL)" if "key" in req.query else ""
            raise Unauthenticated(
                f"{what[:1].upper()}{what[1:]} needs the admin key: send 'Authorization: "
                f"Bearer KEY' or 'x-goog-api-key: KEY'{hint}.",
                reason="ADMIN_KEY_MISSING",
            )
        if not hmac.compare_digest(given.encode(), self._key):
            self._refuse(address, started, count, now, "a wrong key")
            raise PermissionDenied("The admin key is not valid.", reason="ADMIN_KEY_INVALID")

    def _refuse(self, address: str, started: float, count: int, now: float, why: str) -> None:
        count += 1
        if address not in self._failures and len(self._failures) >= MAX_TRACKED:
            self._forget_ended(now)
        self._failures[address] = (started, count)
        log.warning(
            "admin access refused for client %s: %s (%d in %.0f s)",
            address, why, count, self._window_s,
        )
        if count == self._max_failures:
            log.warning("client %s is refused admin access for the rest of the window", address)

    def _forget_ended(self, now: float) -> None:
        ended = [a for a, (s, _c) in self._failures.items() if now - s >= self._window_s]
        for address in ended or list(self._failures)[: MAX_TRACKED // 10]:
            del self._failures[address]
