"""Operational metrics in Prometheus' text format, at ``GET /metrics``.

The hot path only adds to plain integers on the event loop thread (no locks, no metric
objects per request); prometheus-client turns them into metric families when scraped.
Money is exported in integer nano-USD, like the ledger. Each worker process keeps its own
counters: with ``--workers N`` a scrape sees the worker that answered it.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from gemgate.billing import Usage

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TOKEN_KINDS = (
    "prompt", "cached", "tool_use_prompt", "thoughts", "output_text", "output_image", "output_audio"
)


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.total += seconds


CIRCUIT_STATES = {"closed": 0, "half_open": 1, "open": 2}
# (channel label, circuit state) for every channel, read when scraped.
ChannelStates = Callable[[], Iterable[tuple[str, str]]]


class Metrics:
    def __init__(self, channel_states: ChannelStates | None = None) -> None:
        self.channel_states = channel_states
        self.attempts: Counter[tuple[str, str]] = Counter()  # channel, result (ok or error class)
        self.attempt_latency: dict[str, _Histogram] = {}  # channel
        self.requests: Counter[tuple[str, str, str]] = Counter()  # door, model, status
        self.rejected: Counter[tuple[str, str]] = Counter()  # door, HTTP code
        self.tokens: Counter[tuple[str, str]] = Counter()  # model, kind
        self.cost_nanos: Counter[str] = Counter()  # model
        self.latency: dict[str, _Histogram] = {}  # door
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def observe(self, door: str, model: str, status: str, usage: Usage, cost: int, seconds: float) -> None:
        """One admitted request, settled."""
        self.requests[door, model, status] += 1
        tokens = self.tokens
        for kind, count in (
            ("prompt", usage.prompt_total),
            ("cached", usage.cached_total),
            ("tool_use_prompt", usage.tool_use_prompt),
            ("thoughts", usage.thoughts),
            ("output_text", usage.output_text),
            ("output_image", usage.output_image),
            ("output_audio", usage.output_audio),
        ):
            if count:
                tokens[model, kind] += count
        if cost:
            self.cost_nanos[model] += cost
        histogram = self.latency.get(door)
        if histogram is None:
            histogram = self.latency[door] = _Histogram()
        histogram.observe(seconds)

    def attempt(self, channel: str, result: str, seconds: float) -> None:
        """One attempt at an upstream: ``result`` is ``ok`` or the failure's class."""
        self.attempts[channel, result] += 1
        histogram = self.attempt_latency.get(channel)
        if histogram is None:
            histogram = self.attempt_latency[channel] = _Histogram()
        histogram.observe(seconds)

    def reject(self, door: str, code: int) -> None:
        """A request refused or failed before admission (bad key, unknown model, budget...)."""
        self.rejected[door, str(code)] += 1

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Collector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def collect(self) -> Iterator[Metric]:
        m = self._m
        requests = CounterMetricFamily(
            "gemgate_requests", "Admitted requests, by door, model and outcome.",
            labels=("door", "model", "status"),
        )
        for (door, model, status), n in sorted(m.requests.items()):
            requests.add_metric((door, model, status), n)
        yield requests
        rejected = CounterMetricFamily(
            "gemgate_rejected_requests", "Requests refused before admission, by door and HTTP code.",
            labels=("door", "code"),
        )
        for (door, code), n in sorted(m.rejected.items()):
            rejected.add_metric((door, code), n)
        yield rejected
        tokens = CounterMetricFamily(
            "gemgate_tokens", "Tokens metered, by model and kind.", labels=("model", "kind")
        )
        for (model, kind), n in sorted(m.tokens.items()):
            tokens.add_metric((model, kind), n)
        yield tokens
        cost = CounterMetricFamily(
            "gemgate_cost_nanousd", "Cost billed, in nano-USD, by model.", labels=("model",)
        )
        for model, n in sorted(m.cost_nanos.items()):
            cost.add_metric((model,), n)
        yield cost
        yield _histograms(
            "gemgate_request_duration_seconds",
            "Time from a request's arrival to its settlement, by door.",
            "door",
            m.latency,
        )
        attempts = CounterMetricFamily(
            "gemgate_upstream_attempts",
            "Attempts at upstreams, by channel and result (ok, or the failure's class).",
            labels=("channel", "result"),
        )
        for (channel, result), n in sorted(m.attempts.items()):
            attempts.add_metric((channel, result), n)
        yield attempts
        yield _histograms(
            "gemgate_upstream_attempt_duration_seconds",
            "Time an attempt at an upstream took until it answered or failed, by channel.",
            "channel",
            m.attempt_latency,
        )
        if m.channel_states is not None:
            circuit = GaugeMetricFamily(
                "gemgate_channel_circuit_state",
                "Each channel's circuit breaker: 0 closed, 1 half-open, 2 open.",
                labels=("channel",),
            )
            for channel, state in m.channel_states():
                circuit.add_metric((channel,), CIRCUIT_STATES.get(state, 0))
            yield circuit


def _histograms(name: str, doc: str, label: str, by: dict[str, _Histogram]) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=(label,))
    for value, h in sorted(by.items()):
        cumulative = 0
        buckets = []
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), h.counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
        family.add_metric((value,), buckets, h.total)
    return family
