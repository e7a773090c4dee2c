"""Routing: a public model id (or alias) to the provider and upstream model that serve it.

Each deployed model is described by its bundled catalog entry (limits, capabilities,
prices) with the config's overrides applied. A model the catalog does not know gets a
plain description and no price until the config gives it one.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

from gemgate.catalog import CatalogModel, Price
from gemgate.errors import NotFound
from gemgate.providers.base import Provider
from gemgate.settings import ConfigError, ModelSettings

log = logging.getLogger("gemgate.route")

ZERO_PRICE = Price(input=Decimal(0), output=Decimal(0))


@dataclass(frozen=True, slots=True)
class Route:
    model_id: str  # the public id clients use
    provider: Provider
    provider_name: str
    provider_type: str
    upstream_model: str
    info: CatalogModel

    @property
    def price(self) -> Price:
        return self.info.price


def _describe(m: ModelSettings, catalog: Mapping[str, CatalogModel]) -> CatalogModel:
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
        providers: Mapping[str, tuple[Provider, str]],
        catalog: Mapping[str, CatalogModel],
    ) -> Router:
        entries = []
        for m in models:
            provider, ptype = providers[m.provider]
            route = Route(
                model_id=m.id,
                provider=provider,
                provider_name=m.provider,
                provider_type=ptype,
                upstream_model=m.upstream_model,
                info=_describe(m, catalog),
            )
            entries.append((route, m.aliases))
        return cls(entries)

    def resolve(self, model: str, method: str, version: str = "v1beta") -> Route:
        route = self._by_id.get(model)
        if route is None:
            raise NotFound(
                f"models/{model} is not found for API version {version}, or is not supported "
                f"for {method}. Call ListModels to see the list of available models and their "
                "supported methods."
            )
        return route

    def find(self, model: str) -> Route | None:
        return self._by_id.get(model)

    def routes(self) -> list[Route]:
        return list(self._ordered)
