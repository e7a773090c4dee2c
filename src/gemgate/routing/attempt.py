"""The record of one attempt at an upstream, kept with the request's usage record.

A failed attempt is never billed; the list of them says which channels and keys failed,
how, and how long each took.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Error classes, as recorded and as counted in metrics.
CONNECT = "connect"  # could not reach the upstream, or the connection broke before an answer
TIMEOUT = "timeout"  # connect timeout or first-token timeout
SERVER = "server"  # the upstream's 5xx (or an error event opening a 200 stream)
RATE_LIMITED = "rate_limited"  # the upstream's 429
CREDENTIAL = "credential"  # the upstream refused the gateway's key
CLIENT = "client"  # the upstream refused the client's request (never tried elsewhere)
CANCELLED = "cancelled"  # the client went away during the attempt


@dataclass(slots=True)
class Attempt:
    channel: str
    key: str | None
    error: str | None  # None: this attempt answered
    status: int
    at_ms: int  # since the request arrived
    duration_ms: int

    def as_json(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "key": self.key,
            "error": self.error,
            "status": self.status,
            "at_ms": self.at_ms,
            "ms": self.duration_ms,
        }
