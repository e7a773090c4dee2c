"""Read the model catalog (limits, capabilities and prices) from TOML into frozen dataclasses.

The bundled ``models.toml`` is data, not code: a price change is an edit there (or a price
override in the deployment config), never a code change. Parsing is strict: an unknown key
or a value of the wrong type raises :class:`ValueError` naming the model and the key, so a
typo can never silently bill at a wrong rate. Prices are :class:`~decimal.Decimal` USD per
1,000,000 tokens, read from decimal strings (or integers); floats are refused.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gemgate.catalog.pricing import PriceSchedule

BUNDLED_CATALOG = "models.toml"
DEFAULT_LONG_CONTEXT_THRESHOLD = 200_000

#: The per-token price kinds, in USD per 1M tokens. Optional kinds fall back as documented
#: on :class:`Price`.
PRICE_KEYS: tuple[str, ...] = (
    "input",
    "input_audio",
    "output",
    "output_image",
    "output_audio",
    "cached_input",
    "cached_input_audio",
    "cache_storage",
)
_REQUIRED_PRICE_KEYS = ("input", "output")
_LONG_PREFIX = "long_context_"

#: Gemini's content modalities as they appear in usageMetadata details.
MODALITIES: frozenset[str] = frozenset({"TEXT", "IMAGE", "AUDIO", "VIDEO", "DOCUMENT"})

# Methods a listed method implies: Google's models.list names ``generateContent`` but the
# same model streams, and names ``embedContent`` while the SDK calls ``batchEmbedContents``.
_IMPLIED_METHODS = {
    "streamGenerateContent": "generateContent",
    "batchEmbedContents": "embedContent",
}


def _money(value: object, where: str) -> Decimal:
    """A price: a decimal string, an int or a Decimal; finite and not negative. Never a float."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(
            f'{where} must be a decimal string such as "0.30" or an integer, '
            f"got {type(value).__name__}"
        )
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{where} is not a decimal number: {value!r}") from None
    if not result.is_finite() or result < 0:
        raise ValueError(f"{where} must be a finite, non-negative number, got {value!r}")
    return result


money = _money  # shared with the price schedules


def _threshold(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where} must be a non-negative integer, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Price:
    """Rates in USD per 1,000,000 tokens for one model (and one context tier).

    ``None`` means the model publishes no distinct rate for that kind, and the rate falls
    back: audio input to ``input``; image and audio output to ``output``; cached input to
    the fresh input rate; cached audio to ``cached_input``, else the audio input rate.
    ``long_context`` is the complete rate set used for a request whose prompt exceeds
    ``long_context_threshold`` tokens.
    """

    input: Decimal
    output: Decimal
    input_audio: Decimal | None = None
    output_image: Decimal | None = None
    output_audio: Decimal | None = None
    cached_input: Decimal | None = None
    cached_input_audio: Decimal | None = None
    # Keeping a cached content: USD per 1M tokens per hour (billed per cache, not per call).
    cache_storage: Decimal | None = None
    long_context: Price | None = None
    long_context_threshold: int = DEFAULT_LONG_CONTEXT_THRESHOLD

    # Resolved rates (fallbacks applied).
    @property
    def audio_input_rate(self) -> Decimal:
        return self.input if self.input_audio is None else self.input_audio

    @property
    def cached_rate(self) -> Decimal:
        return self.input if self.cached_input is None else self.cached_input

    @property
    def cached_audio_rate(self) -> Decimal:
        if self.cached_input_audio is not None:
            return self.cached_input_audio
        if self.cached_input is not None:
            return self.cached_input
        return self.audio_input_rate

    @property
    def image_output_rate(self) -> Decimal:
        return self.output if self.output_image is None else self.output_image

    @property
    def audio_output_rate(self) -> Decimal:
        return self.output if self.output_audio is None else self.output_audio

    def tier(self, prompt_tokens: int) -> Price:
        """The rate set that applies to a request whose prompt has ``prompt_tokens`` tokens."""
        if self.long_context is not None and prompt_tokens > self.long_context_threshold:
            return self.long_context
        return self

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str = "price") -> Price:
        """Build a price from a table of the price keys (plus an optional long-context tier)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"{where} must be a table, got {type(data).__name__}")
        values: dict[str, Any] = {}
        long_table: dict[str, Any] = {}
        for key, value in data.items():
            if key in PRICE_KEYS:
                values[key] = _money(value, f"{where}.{key}")
            elif key == "long_context_threshold":
                values[key] = _threshold(value, f"{where}.{key}")
            elif key == "long_context":
                if not isinstance(value, Mapping):
                    raise ValueError(f"{where}.long_context must be a table")
                long_table.update(value)
            elif key.startswith(_LONG_PREFIX) and key[len(_LONG_PREFIX) :] in PRICE_KEYS:
                long_table[key[len(_LONG_PREFIX) :]] = value
            else:
                raise ValueError(f"{where}: unknown key {key!r}")
        for key in _REQUIRED_PRICE_KEYS:
            if key not in values:
                raise ValueError(f"{where}: missing key {key!r}")
        if long_table:
            values["long_context"] = cls._tier_from_mapping(long_table, f"{where}.long_context")
        return cls(**values)

    @classmethod
    def _tier_from_mapping(cls, data: Mapping[str, Any], where: str) -> Price:
        for key in data:
            if key not in PRICE_KEYS:
                raise ValueError(f"{where}: unknown key {key!r}")
        return cls.from_mapping(data, where)

    def override(self, mapping: Mapping[str, Any]) -> Price:
        """A copy with some rates replaced, as a deployment's config declares them.

        Keys are the price keys (values: decimal strings, ints or Decimals), plus
        ``long_context_threshold``, and the long-context tier either as a ``long_context``
        table or as flat ``long_context_<key>`` entries. An unknown key raises ValueError.
        Overriding the tier of a model that has none creates it (``input`` and ``output``
        are then required).
        """
        if not isinstance(mapping, Mapping):
            raise ValueError(f"price override must be a table, got {type(mapping).__name__}")
        changes: dict[str, Any] = {}
        long_changes: dict[str, Any] = {}
        for key, value in mapping.items():
            if key in PRICE_KEYS:
                changes[key] = _money(value, f"price override {key!r}")
            elif key == "long_context_threshold":
                changes[key] = _threshold(value, f"price override {key!r}")
            elif key == "long_context":
                if not isinstance(value, Mapping):
                    raise ValueError("price override 'long_context' must be a table")
                long_changes.update(value)
            elif key.startswith(_LONG_PREFIX) and key[len(_LONG_PREFIX) :] in PRICE_KEYS:
                long_changes[key[len(_LONG_PREFIX) :]] = value
            else:
                raise ValueError(f"price override: unknown key {key!r}")
        if long_changes:
            if self.long_context is None:
                changes["long_context"] = self._tier_from_mapping(
                    long_changes, "price override 'long_context'"
                )
            else:
                for key in long_changes:
                    if key not in PRICE_KEYS:
                        raise ValueError(f"price override 'long_context': unknown key {key!r}")
                changes["long_context"] = self.long_context.override(long_changes)
        return replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """Plain data (decimal strings) for JSON answers and logs."""
        out: dict[str, Any] = {}
        for key in PRICE_KEYS:
            value = getattr(self, key)
            if value is not None:
                out[key] = str(value)
        if self.long_context is not None:
            out["long_context_threshold"] = self.long_context_threshold
            out["long_context"] = self.long_context.as_dict()
        return out


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """What an image-generation model accepts in ``generationConfig.imageConfig``."""

    aspect_ratios: tuple[str, ...]
    image_sizes: tuple[str, ...]
    max_input_images: int


@dataclass(frozen=True, slots=True)
class CatalogModel:
    """One model: its public description, limits, capabilities and prices."""

    id: str
    display_name: str
    description: str
    input_token_limit: int
    output_token_limit: int
    supported_methods: tuple[str, ...]
    input_modalities: tuple[str, ...]
    output_modalities: tuple[str, ...]
    thinking: bool
    price: Price
    version: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    max_temperature: float | None = None
    image: ImageLimits | None = None
    local: bool = False
    # Takes built-in tools (Google Search, code execution) next to function declarations
    # in one call (Gemini 3); Gemini 2.x refuses the mix.
    mixed_tools: bool = False
    note: str | None = None
    # The prices over time and across service tiers; ``price`` is its first Standard entry.
    schedule: PriceSchedule | None = None

    def supports(self, method: str) -> bool:
        """Whether ``method`` may be called on this model (streaming implied by generate)."""
        if method in self.supported_methods:
            return True
        implied = _IMPLIED_METHODS.get(method)
        return implied is not None and implied in self.supported_methods

    def with_price(self, price: Price) -> CatalogModel:
        return replace(self, price=price, schedule=None)


class _Fields:
    """Typed, strict access to one TOML table; ``done`` rejects keys nobody asked for."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where
        self.seen: set[str] = set()

    def _get(self, key: str, required: bool) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if required:
                raise ValueError(f"{self.where}: missing key {key!r}")
            return None
        return self.data[key]

    def _bad(self, key: str, kind: str, value: object) -> ValueError:
        return ValueError(f"{self.where}: key {key!r} must be {kind}, got {type(value).__name__}")

    def get_str(self, key: str, required: bool = True) -> str | None:
        value = self._get(key, required)
        if value is not None and not isinstance(value, str):
            raise self._bad(key, "a string", value)
        return value

    def get_int(self, key: str, required: bool = True, minimum: int = 0) -> int | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._bad(key, "an integer", value)
        if value < minimum:
            raise ValueError(f"{self.where}: key {key!r} must be >= {minimum}, got {value}")
        return value

    def get_float(self, key: str, required: bool = False) -> float | None:
        value = self._get(key, required)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._bad(key, "a number", value)
        return float(value)

    def get_bool(self, key: str, required: bool = True) -> bool | None:
        value = self._get(key, required)
        if value is not None and not isinstance(value, bool):
            raise self._bad(key, "true or false", value)
        return value

    def get_str_list(self, key: str, required: bool = True) -> tuple[str, ...] | None:
        value = self._get(key, required)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings", value)
        return tuple(value)

    def get_table(self, key: str, required: bool = True) -> Mapping[str, Any] | None:
        value = self._get(key, required)
        if value is not None and not isinstance(value, Mapping):
            raise self._bad(key, "a table", value)
        return value

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ValueError(f"{self.where}: unknown key {unknown[0]!r}")


def _modalities(f: _Fields, key: str) -> tuple[str, ...]:
    values = f.get_str_list(key)
    assert values is not None
    for value in values:
        if value not in MODALITIES:
            raise ValueError(
                f"{f.where}: key {key!r} has unknown modality {value!r} "
                f"(expected one of {', '.join(sorted(MODALITIES))})"
            )
    return values


def _image_limits(data: Mapping[str, Any], where: str) -> ImageLimits:
    f = _Fields(data, where)
    ratios = f.get_str_list("aspect_ratios")
    sizes = f.get_str_list("image_sizes")
    max_images = f.get_int("max_input_images")
    f.done()
    assert ratios is not None and sizes is not None and max_images is not None
    return ImageLimits(aspect_ratios=ratios, image_sizes=sizes, max_input_images=max_images)


def _model(
    model_id: str, data: object, version: str = "", factors: Mapping[str, Decimal] | None = None
) -> CatalogModel:
    from gemgate.catalog.pricing import DEFAULT_TIER_FACTORS, parse_schedule, tier_factors

    where = f"catalog model {model_id!r}"
    if not isinstance(data, Mapping):
        raise ValueError(f"{where} must be a table, got {type(data).__name__}")
    f = _Fields(data, where)
    display_name = f.get_str("display_name")
    description = f.get_str("description")
    input_limit = f.get_int("input_token_limit", minimum=1)
    output_limit = f.get_int("output_token_limit", minimum=1)
    methods = f.get_str_list("supported_methods")
    inputs = _modalities(f, "input_modalities")
    outputs = _modalities(f, "output_modalities")
    thinking = f.get_bool("thinking")
    price_table = f.get_table("price")
    image_table = f.get_table("image", required=False)
    model_factors = tier_factors(
        f.get_table("service_tiers", required=False),
        f"{where}: service_tiers",
        DEFAULT_TIER_FACTORS if factors is None else factors,
    )
    schedule = parse_schedule(
        price_table or {},
        f._get("price_changes", False),
        where=where,
        version=version,
        factors=model_factors,
    )
    model = CatalogModel(
        id=model_id,
        display_name=display_name or "",
        description=description or "",
        input_token_limit=input_limit or 0,
        output_token_limit=output_limit or 0,
        supported_methods=methods or (),
        input_modalities=inputs,
        output_modalities=outputs,
        thinking=bool(thinking),
        price=schedule.entries[0].standard,
        version=f.get_str("version", required=False),
        temperature=f.get_float("temperature"),
        top_p=f.get_float("top_p"),
        top_k=f.get_int("top_k", required=False, minimum=1),
        max_temperature=f.get_float("max_temperature"),
        image=None if image_table is None else _image_limits(image_table, f"{where}: image"),
        local=bool(f.get_bool("local", required=False)),
        mixed_tools=bool(f.get_bool("mixed_tools", required=False)),
        note=f.get_str("note", required=False),
        schedule=schedule,
    )
    f.done()
    return model


def parse_catalog(raw: Mapping[str, Any], where: str = "catalog") -> dict[str, CatalogModel]:
    """Validate an already-parsed catalog document; model id -> model."""
    from gemgate.catalog.pricing import DEFAULT_TIER_FACTORS, tier_factors

    top = _Fields(raw, where)
    top.get_str("source")
    read_on = top.get_str("read_on")
    # Names these prices on every usage record billed with them (default: read_on).
    version = top.get_str("version", required=False) or read_on or ""
    factors = tier_factors(
        top.get_table("service_tiers", required=False), f"{where}: service_tiers", DEFAULT_TIER_FACTORS
    )
    top.get_str("limits_source", required=False)
    top.get_str("limits_read_on", required=False)
    models = top.get_table("models")
    top.done()
    assert models is not None
    catalog: dict[str, CatalogModel] = {}
    for model_id, data in models.items():
        if not model_id or ".." in model_id or model_id.startswith("/") or model_id.endswith("/"):
            raise ValueError(f"{where}: {model_id!r} is not a valid model id")
        catalog[model_id] = _model(model_id, data, version, factors)
    return catalog


def load_catalog(
    path: Path | None = None, *, prices_file: str | Path | None = None
) -> dict[str, CatalogModel]:
    """Load a catalog file, by default the one bundled with the package, with the prices of
    an operator's ``prices_file`` (:mod:`gemgate.catalog.price_file`) in place of its own."""
    catalog = _load_catalog(path)
    if prices_file is None:
        return catalog
    from gemgate.catalog.price_file import load_price_file

    return load_price_file(prices_file, catalog)


def _load_catalog(path: Path | None) -> dict[str, CatalogModel]:
    if path is None:
        name = f"bundled {BUNDLED_CATALOG}"
        text = (
            resources.files(__package__ or "gemgate.catalog")
            .joinpath(BUNDLED_CATALOG)
            .read_text(encoding="utf-8")
        )
    else:
        name = str(path)
        text = Path(path).read_text(encoding="utf-8")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"catalog {name}: not valid TOML: {exc}") from None
    return parse_catalog(raw, f"catalog {name}")
