"""A channel: one way to serve a model.

It is a provider, the upstream's name for the model, a priority tier and a weight within
the tier, plus the live health of that pairing. The provider's key pool is shared by every
channel on that provider (a key the upstream refused is refused for all its models).
"""

from __future__ import annotations

from dataclasses import dataclass

from gemgate.providers.base import Provider
from gemgate.routing.health import CircuitBreaker
from gemgate.routing.keys import KeyPool


@dataclass(slots=True, eq=False)
class Channel:
    label: str  # "{provider}/{upstream_model}", as records and metrics name it
    provider: Provider
    provider_name: str
    upstream_model: str
    priority: int
    weight: int
    keys: KeyPool | None  # None: the provider needs no upstream key
    health: CircuitBreaker
    enabled: bool = True

    def speaks(self, protocol: str) -> bool:
        return protocol in self.provider.speaks
