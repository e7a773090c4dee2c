"""Prices over time and across service tiers: schedules, tier factors, price files, and the
exact nano-USD they bill."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gemgate.billing import Usage, cost_nanos
from gemgate.catalog import load_catalog, parse_catalog
from gemgate.catalog.price_file import apply_prices, load_price_file
from gemgate.catalog.pricing import applied_price, scaled, tier_name
from gemgate.pipeline.meter import call_tier, meter
from gemgate.types.canonical import CanonicalRequest

BEFORE = datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)
AFTER = datetime(2027, 1, 1, 0, 0, 0, tzinfo=UTC)
USAGE = {"promptTokenCount": 1000, "candidatesTokenCount": 200, "thoughtsTokenCount": 50,
         "totalTokenCount": 1250}


def catalog_with(models: dict[str, Any], **top: Any) -> dict[str, Any]:
    return parse_catalog({"source": "test", "read_on": "2026-12-03", **top, "models": models})


def model(price: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "display_name": "M", "description": "M", "input_token_limit": 1000, "output_token_limit": 100,
        "supported_methods": ["generateContent"], "input_modalities": ["TEXT"],
        "output_modalities": ["TEXT"], "thinking": False, "price": price, **extra,
    }


def test_bundled_scheduled_change_takes_effect_at_its_date() -> None:
    schedule = load_catalog()["gemini-3.8-flash"].schedule
    assert schedule is not None
    before, after = schedule.at(BEFORE), schedule.at(AFTER)
    assert (before.price.input, before.price.output, before.price.cached_input) == (
        Decimal("0.75"), Decimal("3.75"), Decimal("0.075"))
    assert (after.price.input, after.price.output, after.price.cached_input) == (
        Decimal("1.50"), Decimal("7.50"), Decimal("0.15"))
    assert before.version == "2026-12-03@base"
    assert after.version == "2026-12-03@2027-01-01T00:00:00Z"
    # 1000 prompt at $0.75/M = 750000 nanos; 250 output (thoughts included) at $3.75/M.
    assert meter(USAGE, before).cost_nanos == 750_000 + 937_500
    assert meter(USAGE, after).cost_nanos == 1_500_000 + 1_875_000


@pytest.mark.parametrize(
    ("tier", "expected"),
    [  # gemini-2.5-flash: $0.30 input, $2.50 output; flex and batch half, priority x1.8
        ("standard", 1000 * 300 + 250 * 2500),
        ("flex", 1000 * 150 + 250 * 1250),
        ("batch", 1000 * 150 + 250 * 1250),
        ("priority", 1000 * 540 + 250 * 4500),
    ],
)
def test_each_tier_bills_the_catalogs_rates_to_the_nano(tier: str, expected: int) -> None:
    info = load_catalog()["gemini-2.5-flash"]
    applied = applied_price(info.price, info.schedule, BEFORE, tier)
    assert applied.tier == tier
    metered = meter(USAGE, applied)
    assert (metered.cost_nanos, metered.service_tier) == (expected, tier)
    assert metered.price_version == "2026-12-03@base"


def test_tiers_scale_every_rate_long_context_included() -> None:
    pro = load_catalog()["gemini-2.5-pro"]
    assert pro.schedule is not None
    flex = pro.schedule.at(BEFORE, "flex").price
    assert flex == scaled(pro.price, Decimal("0.5"))
    assert flex.long_context is not None and flex.long_context.input == Decimal("1.250")
    long_usage = Usage.from_metadata({"promptTokenCount": 300_000, "candidatesTokenCount": 10})
    assert cost_nanos(long_usage, flex) == 300_000 * 1250 + 10 * 7500


def test_the_reported_tier_wins_over_the_requested_one() -> None:
    creq = CanonicalRequest(model="m", method="generateContent", body={"serviceTier": "priority"})
    assert call_tier(creq) == "priority"
    assert call_tier(creq, "standard") == "standard"  # Google downgraded the request
    assert call_tier(creq, "ON_DEMAND_FLEX") == "flex"  # Vertex's trafficType
    assert call_tier(creq, "PROVISIONED_THROUGHPUT") == "priority"  # no per-token tier of its own
    assert call_tier(creq, None, batch=True) == "batch"
    plain = CanonicalRequest(model="m", method="generateContent", body={})
    assert call_tier(plain) == "standard"
    assert [tier_name(v) for v in ("SERVICE_TIER_FLEX", "Priority", "default", "bogus")] == [
        "flex", "priority", "standard", None]


def test_model_factors_and_tier_tables_override_the_catalogs() -> None:
    catalog = catalog_with(
        {"m": model({"input": "1.00", "output": "2.00", "priority": {"output": "3.10"}},
                    service_tiers={"priority": "2"})},
        service_tiers={"flex": "0.5", "priority": "1.8"},
    )
    schedule = catalog["m"].schedule
    assert schedule is not None
    priority = schedule.at(BEFORE, "priority").price
    assert (priority.input, priority.output) == (Decimal("2.00"), Decimal("3.10"))
    assert schedule.at(BEFORE, "flex").price.input == Decimal("0.500")


def test_a_tier_the_data_does_not_price_bills_standard() -> None:
    catalog = catalog_with({"m": model({"input": "1", "output": "2"})}, service_tiers={"flex": "0.5"})
    schedule = catalog["m"].schedule
    assert schedule is not None
    applied = schedule.at(BEFORE, "priority")  # no default priority factor in this catalog
    assert (applied.tier, applied.price.input) == ("standard", Decimal("1"))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ([{"input": "2"}], "missing key 'from'"),
        ([{"from": datetime(2027, 1, 1), "input": "2"}], "time zone"),
        ([{"from": "2027-01-01", "input": "2"}], "date or an offset date-time"),
        ([{"from": AFTER, "input": 0.3}], "decimal string"),
        ([{"from": AFTER, "bogus": "1"}], "unknown key 'bogus'"),
        ([{"from": AFTER, "input": "2"}, {"from": BEFORE, "input": "3"}], "after the change"),
    ],
)
def test_bad_price_changes_are_refused_naming_them(changes: list[Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        catalog_with({"m": model({"input": "1", "output": "2"}, price_changes=changes)})


def test_price_file_replaces_the_prices_of_the_models_it_names(tmp_path: Path) -> None:
    path = tmp_path / "prices.toml"
    path.write_text(
        'version = "ops-7"\n'
        '[models."gemini-2.5-flash".price]\ninput = "0.40"\noutput = "3.00"\n'
        '[[models."gemini-2.5-flash".price_changes]]\nfrom = 2027-02-01T00:00:00Z\ninput = "0.45"\n'
    )
    catalog = load_price_file(path, load_catalog())
    info = catalog["gemini-2.5-flash"]
    assert info.schedule is not None
    now = info.schedule.at(BEFORE)
    later = info.schedule.at(datetime(2027, 2, 2, tzinfo=UTC), "flex")
    assert (now.version, now.price.input, now.price.input_audio) == ("ops-7@base", Decimal("0.40"), None)
    assert (later.version, later.price.input, later.price.output) == (
        "ops-7@2027-02-01T00:00:00Z", Decimal("0.225"), Decimal("1.500"))
    assert catalog["gemini-2.5-pro"] == load_catalog()["gemini-2.5-pro"]  # untouched


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"models": {}}, "'version'"),
        ({"version": "v", "bogus": 1}, "unknown key 'bogus'"),
        ({"version": "v", "models": {"no-such-model": {"price": {"input": "1", "output": "1"}}}},
         "not in the catalog"),
        ({"version": "v", "models": {"gemini-2.5-flash": {"price": {"input": "1", "output": "1"},
                                                          "display_name": "x"}}},
         "unknown key 'display_name'"),
        ({"version": "v", "models": {"gemini-2.5-flash": {"price": {"input": "1"}}}},
         "missing key 'output'"),
        ({"version": "v", "service_tiers": {"turbo": "3"}}, "unknown service tier 'turbo'"),
    ],
)
def test_bad_price_files_are_refused_naming_what_is_wrong(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        apply_prices(load_catalog(), raw, "price file test.toml")
