"""Channels: the ways a model is served, and what the attempt loop knows of their health.

- :mod:`.keys` — a provider's pool of upstream keys, used in turn; refused keys are set
  aside, rate-limited ones rest.
- :mod:`.health` — one circuit breaker and running statistics per channel.
- :mod:`.channel` — a channel: provider + upstream model + priority + weight.
- :mod:`.select` — the order a request tries its model's channels in.
- :mod:`.attempt` — the record of one attempt.
"""

from gemgate.routing.attempt import Attempt
from gemgate.routing.channel import Channel
from gemgate.routing.health import CircuitBreaker
from gemgate.routing.keys import KeyPool, UpstreamKey
from gemgate.routing.select import Selector

__all__ = ["Attempt", "Channel", "CircuitBreaker", "KeyPool", "Selector", "UpstreamKey"]
