"""Metering: token usage by modality from what the upstream reported, or counted locally.

Counting is for answers that report no usage (and streams cut before their usage came);
large texts are counted off the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from gemgate.billing import Usage, cost_nanos
from gemgate.catalog import Price
from gemgate.catalog.pricing import BATCH, STANDARD, AppliedPrice, tier_name
from gemgate.tokens import TokenCounter
from gemgate.types.canonical import CanonicalRequest, Chunk, Reply
from gemgate.types.response import candidate_text

# Texts longer than this are counted on a worker thread rather than on the event loop.
INLINE_COUNT_CHARS = 32 * 1024
# Bodies larger than this are parsed on a worker thread when their text must be counted.
INLINE_PARSE_BYTES = 1024 * 1024


@dataclass(slots=True)
class Metered:
    usage: Usage
    cost_nanos: int
    price_version: str | None = None  # which prices billed it (None: nothing was billed)
    service_tier: str | None = None


def meter(
    usage_metadata: dict[str, Any] | None, price: Price | AppliedPrice, *, estimated: bool = False
) -> Metered:
    usage = Usage.from_metadata(usage_metadata or {}, estimated=estimated)
    if isinstance(price, AppliedPrice):
        return Metered(usage, cost_nanos(usage, price.price), price.version, price.tier)
    return Metered(usage, cost_nanos(usage, price))


def call_tier(creq: CanonicalRequest, reported: str | None = None, *, batch: bool = False) -> str:
    """The service tier a call is billed in: the one the upstream says it served wins over
    the one the call asked for (a batch's item: batch; else the body's ``serviceTier``)."""
    if batch:
        return BATCH
    return tier_name(reported) or tier_name(creq.body.get("serviceTier")) or STANDARD


def estimated_metadata(prompt_tokens: int, output_tokens: int) -> dict[str, int]:
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": output_tokens,
        "totalTokenCount": prompt_tokens + output_tokens,
    }


async def count_text(counter: TokenCounter, text: str) -> int:
    if len(text) <= INLINE_COUNT_CHARS:
        return counter.count_text(text)
    return await asyncio.to_thread(counter.count_text, text)


async def reply_text(reply: Reply) -> str:
    """The generated text of a canonical reply (parsed off the loop when it is large)."""
    if reply.data is None and len(reply.body) > INLINE_PARSE_BYTES:
        return await asyncio.to_thread(lambda: candidate_text(reply.json()))
    return candidate_text(reply.json())


class StreamMeter:
    """Follows a stream without keeping it: the last cumulative usage the upstream reported,
    a running local count of the relayed text for when it reports none, and whether a
    chunk finished the answer."""

    __slots__ = ("_counter", "chunks", "finished", "last_usage", "relayed_tokens", "service_tier")

    def __init__(self, counter: TokenCounter | None) -> None:
        self._counter = counter
        self.last_usage: dict[str, Any] | None = None
        self.relayed_tokens = 0
        self.chunks = 0
        self.finished = False
        self.service_tier: str | None = None  # as the upstream reported it, if it did

    def see(self, chunk: Chunk) -> None:
        self.chunks += 1
        if chunk.service_tier is not None:
            self.service_tier = chunk.service_tier
        if chunk.usage is not None:
            self.last_usage = chunk.usage
        elif chunk.text and self._counter is not None:
            self.relayed_tokens += self._counter.count_text(chunk.text)
