"""The effective prices of every deployed model, as ``gemgate models prices`` shows them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from gemgate.catalog.loader import load_catalog
from gemgate.catalog.pricing import TIERS, applied_price
from gemgate.pipeline.route import describe
from gemgate.settings import Settings


def price_rows(settings: Settings, when: datetime | None = None) -> list[dict[str, Any]]:
    """One row per deployed model and service tier: the rates in force at ``when`` (default
    now), their price version and the next scheduled change, if any."""
    when = when or datetime.now(UTC)
    catalog = load_catalog(prices_file=settings.catalog.prices_file)
    rows: list[dict[str, Any]] = []
    for m in settings.models:
        info = describe(m, catalog)
        schedule = info.schedule
        upcoming = [e for e in schedule.entries if e.start and e.start > when] if schedule else []
        next_change = upcoming[0].start.isoformat() if upcoming and upcoming[0].start else None
        tiers = [t for t in TIERS if schedule is not None and schedule.entry_at(when).rates(t)]
        for tier in tiers or ["standard"]:
            applied = applied_price(info.price, schedule, when, tier)
            rows.append({
                "model": m.id,
                "tier": applied.tier,
                "rates": applied.price.as_dict(),
                "version": applied.version,
                "next_change": next_change,
            })
    return rows
