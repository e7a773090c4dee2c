"""Routing: a public model id (or alias) to the channels that serve it.

Each deployed model is described by its bundled catalog entry (limits, capabilities,
prices) with the config's overrides applied. A model the catalog does not know gets a
plain description and no price until the config gives it one. Its channels are tried by
the attempt loop in the order :class:`~gemgate.routing.Selector` gives.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from gemgate.catalog import CatalogModel, Price
from gemgate.catalog.pricing import STANDARD, AppliedPrice, applied_price, tier_name
from gemgate.errors import NotFound
from gemgate.providers.base import Provider
from gemgate.routing import Channel, CircuitBreaker, KeyPool
from gemgate.settings import ConfigError, ModelSettings, RoutingSettings

log = logging.getLogger("gemgate.route")

ZERO_PRICE = Price(input=Decimal(0), output=Decimal(0))


@dataclass(frozen=True, slots=True)
class Route:
    model_id: str  # the public id clients use
    channels: tuple[Channel, ...]
    info: CatalogModel
    sticky: bool = False

    @property
    def price(self) -> Price:
        """The Standard rates in force now."""
        return self.priced(datetime.now(UTC)).price

    def reserve_price(self, request: dict[str, Any]) -> Price:
        """The rates a budget reservation assumes: those in force now, in the tier the
        request asks for (an upstream that serves it in another tier bills less: Priority
        falls back to Standard, never the other way)."""
        tier = tier_name(request.get("serviceTier")) or STANDARD
        return self.priced(datetime.now(UTC), tier).price

    def priced(self, when: datetime, tier: str = STANDARD) -> AppliedPrice:
        """The rates a call made at ``when`` in service tier ``tier`` is billed at."""
        return applied_price(self.info.price, self.info.schedule, when, tier)

    @property
    def owner(self) -> str:
        """The provider of the first channel, as OpenAI's ``owned_by`` shows it."""
        return self.channels[0].provider_name


def describe(m: ModelSettings, catalog: Mapping[str, CatalogModel]) -> CatalogModel:
    """What clients see of a deployed model: its catalog entry, with the config's overrides."""
    base = catalog.get(m.catalog or "") or catalog.get(m.upstream_model) or catalog.get(m.id)
    if m.catalog and m.catalog not in catalog:
        raise ConfigError(f"model {m.id}: catalog entry {m.catalog!r} does not exist")
    if base is None:
        base = CatalogModel(
            id=m.id,
            display_name=m.display_name or m.id,
            description=f"{m.id}, served by provider {m.provider}",
            input_token_limit=m.input_token_limit or 32768,
            output_token_limit=m.output_token_limit or 8192,
            supported_methods=("generateContent", "countTokens"),
            input_modalities=("TEXT", "IMAGE", "AUDIO", "VIDEO", "DOCUMENT"),
            output_modalities=("TEXT",),
            thinking=False,
            price=ZERO_PRICE,
        )
        if not m.price:
            log.warning("model %s has no catalog entry and no price: it is billed at 0", m.id)
    changes: dict[str, object] = {"id": m.id}
    if m.display_name:
        changes["display_name"] = m.display_name
    if m.input_token_limit:
        changes["input_token_limit"] = m.input_token_limit
    if m.output_token_limit:
        changes["output_token_limit"] = m.output_token_limit
    if m.price:
        try:
            changes["price"] = base.price.override(m.price)
            if base.schedule is not None:
                changes["schedule"] = base.schedule.override(m.price)
        except ValueError as exc:
            raise ConfigError(f"model {m.id}: {exc}") from None
    return replace(base, **changes)  # type: ignore[arg-type]


class Router:
    def __init__(self, routes: Iterable[tuple[Route, tuple[str, ...]]]) -> None:
        self._by_id: dict[str, Route] = {}
        self._ordered: list[Route] = []
        for route, aliases in routes:
            self._ordered.append(route)
            for public in (route.model_id, *aliases):
                self._by_id[public] = route

    @classmethod
    def build(
        cls,
        models: Iterable[ModelSettings],
        providers: Mapping[str, tuple[Provider, KeyPool | None]],
        catalog: Mapping[str, CatalogModel],
        routing: RoutingSettings | None = None,
    ) -> Router:
        routing = routing or RoutingSettings()
        entries = []
        for m in models:
            channels = []
            for c in m.all_channels():
                provider, keys = providers[c.provider]
                channels.append(
                    Channel(
                        label=f"{c.provider}/{c.upstream_model}",
                        provider=provider,
                        provider_name=c.provider,
                        upstream_model=c.upstream_model,
                        priority=c.priority,
                        weight=c.weight,
                        keys=keys,
                        health=CircuitBreaker(routing.circuit_failures, routing.circuit_cooldown_s),
                    )
                )
            route = Route(
                model_id=m.id, channels=tuple(channels), info=describe(m, catalog), sticky=m.sticky
            )
            entries.append((route, m.aliases))
        return cls(entries)

    def channels(self) -> list[tuple[Route, Channel]]:
        return [(r, c) for r in self._ordered for c in r.channels]

    def resolve(self, model: str, method: str, version: str = "v1beta") -> Route:
        route = self._by_id.get(model)
        if route is None:
            raise NotFound(
                f"models/{model} is not found for API version {version}, or is not supported "
                f"for {method}. Call ListModels to see the list of available models and their "
                "supported methods.",
                metadata={"model": model},
            )
        return route

    def find(self, model: str) -> Route | None:
        return self._by_id.get(model)

    def routes(self) -> list[Route]:
        return list(self._ordered)
