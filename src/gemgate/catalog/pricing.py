"""Prices over time and across service tiers, as data.

A model's prices are a :class:`PriceSchedule`: the rates in force from the start, then each
scheduled change (a price that holds "until" a date is a change ``from`` the next one).
Each entry gives the Standard rates and the rates of the other service tiers: ``flex``,
``priority`` and ``batch``. A tier's rates are the Standard rates times the tier's factor
(the catalog's ``[service_tiers]``, or the model's own), and a tier table in the data
(``[models.<id>.price.priority]``) replaces the rates it lists.

A usage record is billed by the entry in force when its request was made and records
which one (:attr:`AppliedPrice.version`), so a later change never rewrites history.
Money stays :class:`~decimal.Decimal`: a factor multiplies a rate exactly.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from gemgate.catalog.loader import PRICE_KEYS, Price, money

STANDARD = "standard"
FLEX = "flex"
PRIORITY = "priority"
BATCH = "batch"
#: Service tiers a request is billed in. ``standard`` is the price table itself.
TIERS: tuple[str, ...] = (STANDARD, FLEX, PRIORITY, BATCH)
_OTHER_TIERS = (FLEX, PRIORITY, BATCH)

#: What Google publishes when a model names no factor of its own: Flex and Batch cost half
#: the Standard price. Priority has no default: a catalog names its factor.
DEFAULT_TIER_FACTORS: Mapping[str, Decimal] = {FLEX: Decimal("0.5"), BATCH: Decimal("0.5")}


def tier_name(value: object) -> str | None:
    """A service tier as clients and upstreams spell it (``"flex"``, ``"FLEX"``,
    ``"SERVICE_TIER_PRIORITY"``, Vertex's ``ON_DEMAND_FLEX``), or None when unknown."""
    if not isinstance(value, str):
        return None
    name = value.strip().lower()
    for prefix in ("service_tier_", "on_demand_"):
        name = name.removeprefix(prefix)
    if name in ("on_demand", "default", "auto", "unspecified", "standard"):
        return STANDARD
    return name if name in TIERS else None


def scaled(price: Price, factor: Decimal) -> Price:
    """Every rate of ``price`` (its long-context tier too) times ``factor``."""
    changes: dict[str, Any] = {}
    for key in PRICE_KEYS:
        value = getattr(price, key)
        if value is not None:
            changes[key] = value * factor
    if price.long_context is not None:
        changes["long_context"] = scaled(price.long_context, factor)
    return replace(price, **changes)


def _at(value: object, where: str) -> datetime:
    """A change's start: a TOML offset date-time, or a date (midnight UTC)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{where} must name its time zone (e.g. 2027-01-01T00:00:00Z)")
        return value.astimezone(UTC)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=UTC)
    raise ValueError(f"{where} must be a date or an offset date-time, got {value!r}")


def tier_factors(raw: object, where: str, base: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """A ``service_tiers`` table (tier -> factor) on top of ``base``."""
    factors = dict(base)
    if raw is None:
        return factors
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} must be a table of tier factors")
    for tier, value in raw.items():
        if tier not in _OTHER_TIERS:
            raise ValueError(f"{where}: unknown service tier {tier!r} (one of {', '.join(_OTHER_TIERS)})")
        factors[tier] = money(value, f"{where}.{tier}")
    return factors


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """The prices in force from ``start`` (None: from the beginning) until the next entry."""

    start: datetime | None
    standard: Price
    tiers: Mapping[str, Price] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return "base" if self.start is None else self.start.strftime("%Y-%m-%dT%H:%M:%SZ")

    def rates(self, tier: str) -> Price | None:
        """The rates of ``tier``; None when the data prices no such tier for this model."""
        if tier == STANDARD:
            return self.standard
        return self.tiers.get(tier)


@dataclass(frozen=True, slots=True)
class AppliedPrice:
    """The rates a record is billed at, and which prices they were."""

    price: Price
    version: str  # "<price data version>@<entry>", plus "+config" for a deployment override
    tier: str


@dataclass(frozen=True, slots=True)
class PriceSchedule:
    version: str  # the price data's version (the catalog's, or an operator's price file's)
    entries: tuple[PriceEntry, ...]
    factors: Mapping[str, Decimal] = field(default_factory=dict)  # tier -> factor
    overridden: bool = False  # the deployment config replaced some rates

    def __post_init__(self) -> None:
        starts = [e.start for e in self.entries]
        if not self.entries or starts[0] is not None:
            raise ValueError("a price schedule starts with the prices in force from the start")
        dated = [s for s in starts[1:] if s is not None]
        if len(dated) != len(starts) - 1 or dated != sorted(set(dated)):
            raise ValueError("price changes must have distinct dates, in order")

    def entry_at(self, when: datetime) -> PriceEntry:
        starts = [e.start for e in self.entries[1:] if e.start is not None]
        return self.entries[bisect.bisect_right(starts, when)]

    def at(self, when: datetime, tier: str = STANDARD) -> AppliedPrice:
        """The price in force at ``when`` in ``tier`` (Standard when the data has none)."""
        entry = self.entry_at(when)
        rates = entry.rates(tier)
        if rates is None:
            rates, tier = entry.standard, STANDARD
        suffix = "+config" if self.overridden else ""
        return AppliedPrice(rates, f"{self.version}@{entry.label}{suffix}", tier)

    def override(self, mapping: Mapping[str, Any]) -> PriceSchedule:
        """Every entry with some Standard rates replaced (the deployment config's
        ``[models.price]``); the tiers follow from the new rates by their factors."""
        entries = tuple(
            _entry(e.start, e.standard.override(mapping), self.factors, {}) for e in self.entries
        )
        return PriceSchedule(self.version, entries, self.factors, overridden=True)

    @classmethod
    def fixed(cls, price: Price, version: str, factors: Mapping[str, Decimal]) -> PriceSchedule:
        return cls(version, (_entry(None, price, factors, {}),), dict(factors))


#: The version named on records billed at prices that come from the config alone.
CONFIG_VERSION = "config"


def applied_price(price: Price, schedule: PriceSchedule | None, when: datetime, tier: str) -> AppliedPrice:
    """The rates a call made at ``when`` in ``tier`` is billed at."""
    if schedule is None:
        return AppliedPrice(price, CONFIG_VERSION, STANDARD)
    return schedule.at(when, tier)


def _entry(
    start: datetime | None,
    standard: Price,
    factors: Mapping[str, Decimal],
    explicit: Mapping[str, Mapping[str, Any]],
) -> PriceEntry:
    tiers: dict[str, Price] = {}
    for tier in _OTHER_TIERS:
        base = scaled(standard, factors[tier]) if tier in factors else None
        table = explicit.get(tier)
        if table is not None:
            base = (base or standard).override(table)
        if base is not None:
            tiers[tier] = base
    return PriceEntry(start, standard, tiers)


def _split_tiers(data: Mapping[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    rates = {k: v for k, v in data.items() if k not in TIERS}
    tiers = {k: v for k, v in data.items() if k in _OTHER_TIERS}
    if STANDARD in data:
        raise ValueError(f"{where}: the Standard rates are the table itself, not {where}.standard")
    for tier, table in tiers.items():
        if not isinstance(table, Mapping):
            raise ValueError(f"{where}.{tier} must be a table of rates")
    return rates, tiers


def parse_schedule(
    price: Mapping[str, Any],
    changes: object,
    *,
    where: str,
    version: str,
    factors: Mapping[str, Decimal],
) -> PriceSchedule:
    """A model's ``price`` table and its ``price_changes`` array as a schedule.

    Each change has a ``from`` (a date, or an offset date-time) and lists the rates that
    change then; what it does not list stays as before. Tier tables may appear in both.
    """
    rates, explicit = _split_tiers(price, f"{where}.price")
    standard = Price.from_mapping(rates, f"{where}: price")
    entries = [_entry(None, standard, factors, explicit)]
    if changes is None:
        return PriceSchedule(version, tuple(entries), dict(factors))
    if not isinstance(changes, list):
        raise ValueError(f"{where}.price_changes must be an array of tables")
    for i, change in enumerate(changes):
        at = f"{where}.price_changes[{i}]"
        if not isinstance(change, Mapping):
            raise ValueError(f"{at} must be a table")
        if "from" not in change:
            raise ValueError(f"{at}: missing key 'from'")
        start = _at(change["from"], f"{at}.from")
        if entries[-1].start is not None and start <= entries[-1].start:
            raise ValueError(f"{at}.from must come after the change before it")
        body = {k: v for k, v in change.items() if k != "from"}
        rates, tiers = _split_tiers(body, at)
        previous = entries[-1]
        try:
            new_standard = previous.standard.override(rates)
        except ValueError as exc:
            raise ValueError(f"{at}: {exc}") from None
        kept = {t: tiers.get(t) for t in _OTHER_TIERS if t in tiers}
        entries.append(_entry(start, new_standard, factors, {k: v for k, v in kept.items() if v}))
    return PriceSchedule(version, tuple(entries), dict(factors))
