"""The model catalog: limits, capabilities and prices as data (``models.toml``)."""

from gemgate.catalog.loader import (
    MODALITIES,
    PRICE_KEYS,
    CatalogModel,
    ImageLimits,
    Price,
    load_catalog,
    parse_catalog,
)

__all__ = [
    "MODALITIES",
    "PRICE_KEYS",
    "CatalogModel",
    "ImageLimits",
    "Price",
    "load_catalog",
    "parse_catalog",
]
