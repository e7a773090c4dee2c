"""Channel health: a circuit breaker and running statistics per channel.

The breaker is *closed* while the channel answers. After ``failures`` consecutive failed
attempts it *opens*: the channel is skipped for ``cooldown`` seconds. Then it is
*half-open*: one request is let through as a probe; its success closes the circuit, its
failure opens it again for another cooldown. ``failures = 0`` never opens it.

Only the channel's own failures count (5xx, timeouts, connection errors, a stream that
fails before its first event); a client's bad request or an upstream key's problem (a
refused or rate-limited key) says nothing about the channel.
"""

from __future__ import annotations

import time

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
EWMA_ALPHA = 0.2


class CircuitBreaker:
    __slots__ = (
        "_probing",
        "consecutive",
        "cooldown",
        "failures",
        "failures_total",
        "latency_ms",
        "opened_at",
        "recent_error_rate",
        "successes_total",
    )

    def __init__(self, failures: int = 3, cooldown: float = 30.0) -> None:
        self.failures = failures
        self.cooldown = cooldown
        self.consecutive = 0
        self.opened_at: float | None = None
        self._probing = False
        self.successes_total = 0
        self.failures_total = 0
        self.latency_ms: float | None = None  # moving average of successful attempts
        self.recent_error_rate = 0.0  # moving average of failures (0..1)

    def state(self, now: float | None = None) -> str:
        if self.opened_at is None:
            return CLOSED
        now = time.monotonic() if now is None else now
        return HALF_OPEN if now - self.opened_at >= self.cooldown else OPEN

    def allows(self, now: float | None = None) -> bool:
        """Whether a request may try this channel now (a half-open circuit lets one probe
        through at a time)."""
        if self.opened_at is None:
            return True
        state = self.state(now)
        return state == HALF_OPEN and not self._probing

    def begin(self, now: float | None = None) -> None:
        """An attempt starts: in a half-open circuit it is the probe."""
        if self.opened_at is not None and self.state(now) == HALF_OPEN:
            self._probing = True

    def retry_in(self, now: float | None = None) -> float:
        """Seconds until an open circuit lets a probe through."""
        if self.opened_at is None:
            return 0.0
        now = time.monotonic() if now is None else now
        return max(0.0, self.cooldown - (now - self.opened_at))

    def success(self, latency_ms: float) -> None:
        self.consecutive = 0
        self.opened_at = None
        self._probing = False
        self.successes_total += 1
        self.recent_error_rate *= 1 - EWMA_ALPHA
        prev = self.latency_ms
        self.latency_ms = latency_ms if prev is None else prev + EWMA_ALPHA * (latency_ms - prev)

    def failure(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        self.consecutive += 1
        self.failures_total += 1
        self.recent_error_rate += EWMA_ALPHA * (1 - self.recent_error_rate)
        if self._probing or (self.failures and self.consecutive >= self.failures):
            self.opened_at = now
        self._probing = False

    def release(self) -> None:
        """An attempt ended saying nothing about the channel (the client's error, a key's
        problem, the client leaving): a probe slot it held is freed."""
        self._probing = False
