"""The bundled catalog and the strict loader."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from gemgate.catalog import CatalogModel, Price, load_catalog, parse_catalog

EXPECTED_MODELS = {
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.5-flash-image",
    "gemini-3-pro-preview",
    "gemini-3-flash-preview",
    "gemini-3-pro-image-preview",
    "gemini-3.1-pro-preview",
    "gemini-3.1-flash-lite-preview",
    "gemini-3.1-flash-image-preview",
    "gemini-3.5-flash",
    "gemini-3.5-flash-lite",
    "gemini-3.8-flash",
    "gemini-embedding-001",
    "gemma-3-270m",
    "claude-opus-5",
    "claude-sonnet-5",
    "claude-opus-4-6",
    "claude-sonnet-4-6",
    "claude-haiku-4-5",
}


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogModel]:
    return load_catalog()


def bundled_raw() -> dict[str, Any]:
    text = resources.files("gemgate.catalog").joinpath("models.toml").read_text("utf-8")
    return tomllib.loads(text)


def test_bundled_catalog_has_every_model(catalog: dict[str, CatalogModel]) -> None:
    assert set(catalog) == EXPECTED_MODELS
    for model_id, model in catalog.items():
        assert model.id == model_id
        assert isinstance(model.price.input, Decimal)
        assert isinstance(model.price.output, Decimal)
        assert model.input_token_limit > 0 and model.output_token_limit > 0


def test_bundled_header_names_its_source() -> None:
    raw = bundled_raw()
    assert raw["source"] == "https://ai.google.dev/gemini-api/docs/pricing"
    assert isinstance(raw["read_on"], str)


def test_prices_are_strings_in_the_file() -> None:
    def walk(table: dict[str, Any]) -> None:
        for value in table.values():
            if isinstance(value, dict):
                walk(value)
            else:
                assert not isinstance(value, float)

    for model in bundled_raw()["models"].values():
        walk(model["price"])


def test_published_figures(catalog: dict[str, CatalogModel]) -> None:
    pro = catalog["gemini-2.5-pro"].price
    assert (pro.input, pro.output, pro.cached_input) == (
        Decimal("1.25"),
        Decimal("10.00"),
        Decimal("0.125"),
    )
    assert pro.long_context is not None
    assert (pro.long_context.input, pro.long_context.output) == (Decimal("2.50"), Decimal("15"))
    assert pro.long_context_threshold == 200_000
    flash = catalog["gemini-2.5-flash"].price
    assert flash.audio_input_rate == Decimal("1.00")
    assert flash.cached_audio_rate == Decimal("0.10")
    assert catalog["gemini-3-pro-image-preview"].price.image_output_rate == Decimal("120")
    assert catalog["gemini-2.5-flash-image"].price.image_output_rate == Decimal("30")
    assert catalog["gemini-3.1-flash-image-preview"].price.image_output_rate == Decimal("60")
    gemma = catalog["gemma-3-270m"]
    assert gemma.local and gemma.price.input == 0 and gemma.price.output == 0


def test_fallback_rates(catalog: dict[str, CatalogModel]) -> None:
    pro = catalog["gemini-2.5-pro"].price
    assert pro.audio_input_rate == pro.input  # no distinct audio rate
    assert pro.cached_audio_rate == pro.cached_input
    assert pro.image_output_rate == pro.output and pro.audio_output_rate == pro.output
    image = catalog["gemini-3.1-flash-image-preview"].price
    assert image.cached_rate == image.input  # no caching price published


def test_image_limits(catalog: dict[str, CatalogModel]) -> None:
    flash_image = catalog["gemini-2.5-flash-image"].image
    assert flash_image is not None
    assert flash_image.image_sizes == ("1K",) and flash_image.max_input_images == 3
    assert len(flash_image.aspect_ratios) == 10
    nb2 = catalog["gemini-3.1-flash-image-preview"].image
    assert nb2 is not None and "8:1" in nb2.aspect_ratios and nb2.max_input_images == 14
    assert catalog["gemini-2.5-pro"].image is None


def test_capabilities(catalog: dict[str, CatalogModel]) -> None:
    pro = catalog["gemini-2.5-pro"]
    assert pro.thinking and pro.temperature == 1.0 and pro.top_k == 64
    assert pro.supports("generateContent") and pro.supports("streamGenerateContent")
    assert not pro.supports("embedContent")
    emb = catalog["gemini-embedding-001"]
    assert emb.supports("embedContent") and emb.supports("batchEmbedContents")
    assert not emb.supports("generateContent") and emb.temperature is None
    assert "IMAGE" in catalog["gemini-3-pro-image-preview"].output_modalities


def _with_model(model: dict[str, Any]) -> dict[str, Any]:
    return {"source": "x", "read_on": "2026-01-01", "models": {"m": model}}


def _minimal_model() -> dict[str, Any]:
    return {
        "display_name": "M",
        "description": "d",
        "input_token_limit": 100,
        "output_token_limit": 10,
        "supported_methods": ["generateContent"],
        "input_modalities": ["TEXT"],
        "output_modalities": ["TEXT"],
        "thinking": False,
        "price": {"input": "1", "output": "2"},
    }


def test_minimal_model_parses() -> None:
    model = parse_catalog(_with_model(_minimal_model()))["m"]
    assert model.price == Price(input=Decimal(1), output=Decimal(2))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda m: m.update(colour="blue"), "'colour'"),
        (lambda m: m["price"].update(inptu="1"), "'inptu'"),
        (lambda m: m["price"].update(input=0.3), "price.input"),
        (lambda m: m["price"].update(input="abc"), "price.input"),
        (lambda m: m["price"].update(output="-1"), "price.output"),
        (lambda m: m["price"].pop("output"), "'output'"),
        (lambda m: m["price"].update(long_context={"input": "2", "output": "3", "x": "1"}), "'x'"),
        (lambda m: m.update(input_token_limit="100"), "'input_token_limit'"),
        (lambda m: m.update(input_token_limit=True), "'input_token_limit'"),
        (lambda m: m.update(thinking="yes"), "'thinking'"),
        (lambda m: m.update(supported_methods="generateContent"), "'supported_methods'"),
        (lambda m: m.update(input_modalities=["TEXT", "SMELL"]), "'SMELL'"),
        (lambda m: m.pop("display_name"), "'display_name'"),
        (lambda m: m.update(image={"aspect_ratios": ["1:1"], "image_sizes": ["1K"]}), "image"),
        (lambda m: m.update(price="cheap"), "'price'"),
    ],
)
def test_strictness_names_model_and_key(mutate: Any, expected: str) -> None:
    model = _minimal_model()
    mutate(model)
    with pytest.raises(ValueError) as info:
        parse_catalog(_with_model(model))
    message = str(info.value)
    assert "'m'" in message and expected in message


def test_unknown_top_level_key() -> None:
    raw = _with_model(_minimal_model())
    raw["extra"] = 1
    with pytest.raises(ValueError, match="'extra'"):
        parse_catalog(raw)


def test_load_from_path_rejects_unknown_key(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(
        'source = "x"\nread_on = "2026-01-01"\n'
        '[models."tiny"]\n'
        'display_name = "Tiny"\ndescription = "t"\n'
        "input_token_limit = 10\noutput_token_limit = 10\n"
        'supported_methods = ["generateContent"]\n'
        'input_modalities = ["TEXT"]\noutput_modalities = ["TEXT"]\n'
        "thinking = false\nspeed = 11\n"
        '[models."tiny".price]\ninput = "0"\noutput = "0"\n',
        encoding="utf-8",
    )
    with pytest.raises(ValueError, match=r"'tiny'.*'speed'"):
        load_catalog(path)


def test_load_from_path_rejects_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("source = ", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_catalog(path)


def test_price_override(catalog: dict[str, CatalogModel]) -> None:
    base = catalog["gemini-2.5-pro"].price
    changed = base.override({"input": "1.00", "output": 9, "cached_input": Decimal("0.1")})
    assert (changed.input, changed.output, changed.cached_input) == (
        Decimal("1.00"),
        Decimal(9),
        Decimal("0.1"),
    )
    assert changed.long_context == base.long_context  # untouched
    assert base.input == Decimal("1.25")  # the original is unchanged (frozen)


def test_price_override_long_context(catalog: dict[str, CatalogModel]) -> None:
    base = catalog["gemini-2.5-pro"].price
    nested = base.override({"long_context": {"input": "3"}, "long_context_threshold": 100_000})
    assert nested.long_context is not None
    assert nested.long_context.input == Decimal(3)
    assert nested.long_context.output == Decimal("15.00")
    assert nested.long_context_threshold == 100_000
    flat = base.override({"long_context_output": "20"})
    assert flat.long_context is not None and flat.long_context.output == Decimal(20)
    # a model without a tier gets one when both rates are given
    flash = catalog["gemini-2.5-flash"].price
    tiered = flash.override({"long_context": {"input": "0.6", "output": "5"}})
    assert tiered.tier(300_000).input == Decimal("0.6")
    assert tiered.tier(1000).input == Decimal("0.30")
    with pytest.raises(ValueError, match="'output'"):
        flash.override({"long_context_input": "0.6"})


@pytest.mark.parametrize(
    "mapping",
    [
        {"inputs": "1"},
        {"input": 1.5},
        {"input": "abc"},
        {"input": True},
        {"output": "-0.01"},
        {"long_context": {"bogus": "1"}},
        {"long_context": "2"},
        {"long_context_threshold": "200000"},
    ],
)
def test_price_override_rejects(mapping: dict[str, Any], catalog: dict[str, CatalogModel]) -> None:
    with pytest.raises(ValueError):
        catalog["gemini-2.5-pro"].price.override(mapping)


def test_model_with_price(catalog: dict[str, CatalogModel]) -> None:
    model = catalog["gemini-2.5-flash"]
    cheaper = model.with_price(model.price.override({"input": "0.2"}))
    assert cheaper.price.input == Decimal("0.2") and model.price.input == Decimal("0.30")
    assert cheaper.id == model.id
