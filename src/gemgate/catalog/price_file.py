"""An operator's price file: newer prices for catalog models, loaded without a new release.

The file is TOML with the catalog's own price keys::

    version = "2027-01-15"        # required: names these prices on the records they bill
    source = "https://ai.google.dev/gemini-api/docs/pricing"   # optional
    read_on = "2027-01-15"        # optional

    [service_tiers]               # optional: tier factors for the models below (else the
    priority = "1.8"              # catalog's for each model)

    [models."gemini-3.8-flash".price]
    input = "1.50"
    output = "7.50"

    [[models."gemini-3.8-flash".price_changes]]
    from = 2027-03-01T00:00:00Z
    input = "1.25"

Each model it names must be in the catalog; its whole price schedule is replaced by the
file's. Parsing is as strict as the catalog's: an unknown key or model is an error that
names it.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from gemgate.catalog.loader import CatalogModel
from gemgate.catalog.pricing import DEFAULT_TIER_FACTORS, parse_schedule, tier_factors

_MODEL_KEYS = frozenset({"price", "price_changes", "service_tiers"})
_TOP_KEYS = frozenset({"version", "source", "read_on", "service_tiers", "models"})


def apply_prices(
    catalog: Mapping[str, CatalogModel], raw: Mapping[str, Any], where: str
) -> dict[str, CatalogModel]:
    """``catalog`` with the prices of ``raw`` (a parsed price file) in place of its own."""
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r}")
    version = raw.get("version")
    if not isinstance(version, str) or not version:
        raise ValueError(f"{where}: 'version' (a string naming these prices) is required")
    for key in ("source", "read_on"):
        if key in raw and not isinstance(raw[key], str):
            raise ValueError(f"{where}: {key!r} must be a string")
    file_factors = raw.get("service_tiers")
    tier_factors(file_factors, f"{where}: service_tiers", DEFAULT_TIER_FACTORS)  # checked once
    models = raw.get("models", {})
    if not isinstance(models, Mapping):
        raise ValueError(f"{where}: 'models' must be a table of models")
    out = dict(catalog)
    for model_id, data in models.items():
        at = f"{where}: model {model_id!r}"
        if model_id not in catalog:
            raise ValueError(f"{at} is not in the catalog (price it in the config instead)")
        if not isinstance(data, Mapping):
            raise ValueError(f"{at} must be a table")
        extra = sorted(set(data) - _MODEL_KEYS)
        if extra:
            raise ValueError(f"{at}: unknown key {extra[0]!r}")
        if "price" not in data or not isinstance(data["price"], Mapping):
            raise ValueError(f"{at}: missing table 'price'")
        # Tier factors: the catalog's for the model, then the file's, then the model's own here.
        current = catalog[model_id].schedule
        base = current.factors if current is not None else DEFAULT_TIER_FACTORS
        factors = tier_factors(file_factors, f"{where}: service_tiers", base)
        model_factors = tier_factors(data.get("service_tiers"), f"{at}: service_tiers", factors)
        schedule = parse_schedule(
            data["price"], data.get("price_changes"), where=at, version=version, factors=model_factors
        )
        out[model_id] = replace(catalog[model_id], price=schedule.entries[0].standard, schedule=schedule)
    return out


def load_price_file(path: str | Path, catalog: Mapping[str, CatalogModel]) -> dict[str, CatalogModel]:
    """Read the price file at ``path`` and apply it to ``catalog``."""
    where = f"price file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"{where} cannot be read: {exc.strerror or exc}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{where}: not valid TOML: {exc}") from None
    return apply_prices(catalog, raw, where)
