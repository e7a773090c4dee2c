"""The order a request tries its model's channels in.

Lowest priority tier first; within a tier a weighted random order (each channel's chance
to come first is its weight over the tier's total), so traffic spreads by weight. Channels
turned off, and channels whose circuit is open, are left out (a half-open circuit lets its
one probe in); when that leaves none the request fails fast.

With stickiness the random draw is seeded by the caller's key and the start of its
conversation, so the same conversation lands on the same channel (whose prompt cache is
warm) as long as that channel is healthy; when it is not, it is simply not in the order.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Sequence

from gemgate.routing.channel import Channel


class Selector:
    def __init__(self, rng: random.Random | None = None) -> None:
        self._rng = rng or random.Random()

    def order(self, channels: Sequence[Channel], sticky_seed: bytes | None = None) -> list[Channel]:
        if len(channels) == 1:
            only = channels[0]
            return [only] if only.enabled and only.health.allows() else []
        now = time.monotonic()
        pool = [c for c in channels if c.enabled and c.health.allows(now)]
        rng = random.Random(zlib.crc32(sticky_seed)) if sticky_seed is not None else self._rng
        tiers: dict[int, list[Channel]] = {}
        for channel in pool:
            tiers.setdefault(channel.priority, []).append(channel)
        out: list[Channel] = []
        for priority in sorted(tiers):
            out.extend(_weighted_order(tiers[priority], rng))
        return out


def _weighted_order(channels: list[Channel], rng: random.Random) -> list[Channel]:
    """A random order in which each next channel is drawn with probability proportional to
    its weight among those left (weighted sampling without replacement)."""
    if len(channels) == 1:
        return channels
    # Efraimidis-Spirakis: sort by u ** (1 / w), largest first.
    return sorted(channels, key=lambda c: rng.random() ** (1.0 / c.weight), reverse=True)
