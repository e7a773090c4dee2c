"""Metering: token usage by modality from what the upstream reported, or counted locally."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gemgate.billing import Usage, cost_nanos
from gemgate.catalog import Price
from gemgate.providers.base import Chunk
from gemgate.tokens import TokenCounter


@dataclass(slots=True)
class Metered:
    usage: Usage
    cost_nanos: int


def meter(usage_metadata: dict[str, Any] | None, price: Price, *, estimated: bool = False) -> Metered:
    usage = Usage.from_metadata(usage_metadata or {}, estimated=estimated)
    return Metered(usage, cost_nanos(usage, price))


def estimated_metadata(prompt_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
    }


class StreamMeter:
    """Follows a stream without keeping it: the last cumulative usage the upstream reported,
    and a running local count of the relayed text for when it reports none."""

    __slots__ = ("_counter", "chunks", "last_usage", "relayed_tokens")

    def __init__(self, counter: TokenCounter | None) -> None:
        self._counter = counter
        self.last_usage: dict[str, Any] | None = None
        self.relayed_tokens = 0
        self.chunks = 0

    def see(self, chunk: Chunk) -> None:
        self.chunks += 1
        if chunk.usage is not None:
            self.last_usage = chunk.usage
        elif chunk.text and self._counter is not None:
            self.relayed_tokens += self._counter.count_text(chunk.text)
