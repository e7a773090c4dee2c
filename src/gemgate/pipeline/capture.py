"""What a request that keeps its bodies (its key has ``log_bodies`` on) holds of them until
it is settled: the client's request bytes and, bounded, the answer's."""

from __future__ import annotations

CAP_BYTES = 256 * 1024  # of the answer kept; the rest is dropped, and says so


class BodyCapture:
    __slots__ = ("dropped", "events", "request", "response", "size")

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.response: bytes | None = None
        self.events: list[bytes] = []  # a stream's events, in order
        self.size = 0
        self.dropped = 0

    def reply(self, body: bytes) -> None:
        self.response = body[:CAP_BYTES]
        self.dropped = max(0, len(body) - CAP_BYTES)

    def see(self, event: bytes) -> None:
        if self.size + len(event) > CAP_BYTES:
            self.dropped += len(event)
            return
        self.size += len(event)
        self.events.append(event)
