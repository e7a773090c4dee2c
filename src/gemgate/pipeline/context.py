"""Per-request state carried through the pipeline stages."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gemgate.pipeline.capture import BodyCapture
    from gemgate.pipeline.route import Route
    from gemgate.routing import Attempt, Channel
    from gemgate.store.keys import KeyRecord


def new_request_id() -> str:
    """24 hex digits, unique across processes and restarts: the clock in nanoseconds and 32
    random bits (from the process's seeded generator: no system call per request)."""
    return f"{time.time_ns() & 0xFFFFFFFFFFFFFFFF:016x}{random.getrandbits(32):08x}"


@dataclass(slots=True)
class RequestContext:
    door: str  # "gemini" | "openai"
    method: str  # generateContent, streamGenerateContent, chat.completions, ...
    client_ip: str = ""
    request_id: str = field(default_factory=new_request_id)
    started: float = field(default_factory=time.perf_counter)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    key: KeyRecord | None = None
    route: Route | None = None
    channel: Channel | None = None  # the channel that answered (or was last tried)
    upstream_key: str | None = None  # that attempt's upstream key label
    attempts: list[Attempt] = field(default_factory=list)
    first_byte: float | None = None
    streamed: bool = False
    capture: BodyCapture | None = None  # bodies kept for the request log (key's log_bodies)
    batch: str | None = None  # the batch this call is an item of (its usage record names it)

    def mark_first_byte(self) -> None:
        if self.first_byte is None:
            self.first_byte = time.perf_counter()

    def elapsed_ms(self) -> int:
        return int((time.perf_counter() - self.started) * 1000)

    def ttfb_ms(self) -> int | None:
        if self.first_byte is None:
            return None
        return int((self.first_byte - self.started) * 1000)
