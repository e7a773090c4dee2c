"""Cost of a request: token counts x rates, in integer nano-USD.

Money is never a float. Rates are Decimal USD per 1M tokens; a token at ``r`` USD per 1M
costs ``r * 1000`` nanos, exactly. Every term of a request is summed exactly and the total
is rounded ONCE, half-up, to a whole nano.

Rules (Google's published billing):

- The long-context tier applies when the prompt (promptTokenCount, cached tokens included,
  plus toolUsePromptTokenCount) exceeds the price's threshold; then every rate of the
  request comes from the tier.
- Fresh input (prompt minus cached) is billed at the input rate, its audio part at the
  audio input rate. Cached tokens are billed once, at the cached rate (audio at the cached
  audio rate). Tool-use prompt tokens are input (audio part at the audio input rate).
- Thoughts and output text are billed at the output rate, output image tokens at the image
  output rate, output audio tokens at the audio output rate.
"""

from __future__ import annotations

import functools
from decimal import ROUND_HALF_UP, Decimal, localcontext

from gemgate.billing.usage import Usage
from gemgate.catalog.loader import Price

NANOS_PER_USD = 1_000_000_000
_NANOS_PER_USD_PER_MILLION = Decimal(NANOS_PER_USD // 1_000_000)  # 1000
_PRECISION = 60  # digits; far beyond any token count x rate, so sums are exact
_UNITS_PER_NANO = 1_000_000  # integer arithmetic counts in 10^-6 nano-USD
_UNITS_PER_RATE = Decimal(1_000_000_000)  # USD per 1M tokens -> units per token


@functools.lru_cache(maxsize=1024)
def _rate_units(rate: Decimal) -> int | None:
    """The rate (USD per 1M tokens) in units of 10^-6 nano-USD per token, when that is a
    whole number (any rate with at most 9 decimal places); else None."""
    units = rate * _UNITS_PER_RATE
    return int(units) if units == units.to_integral_value() else None


def _to_nanos(terms: list[tuple[int, Decimal]]) -> int:
    """Sum tokens x rate and round half up to a whole nano, exactly.

    Integer arithmetic when every rate is a whole number of units (always, for published
    prices); Decimal with ample precision otherwise. Both give the same result.
    """
    total_units = 0
    for tokens, rate in terms:
        if not tokens:
            continue
        units = _rate_units(rate)
        if units is None:
            return _to_nanos_decimal(terms)
        total_units += tokens * units
    return (total_units + _UNITS_PER_NANO // 2) // _UNITS_PER_NANO


def _to_nanos_decimal(terms: list[tuple[int, Decimal]]) -> int:
    with localcontext() as ctx:
        ctx.prec = _PRECISION
        total = sum((Decimal(tokens) * rate for tokens, rate in terms), Decimal(0))
        nanos = (total * _NANOS_PER_USD_PER_MILLION).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(nanos)


def cost_nanos(usage: Usage, price: Price) -> int:
    """What ``usage`` costs at ``price``, in nano-USD (1 USD = 1_000_000_000 nanos)."""
    p = price.tier(usage.context_tokens)

    prompt = max(usage.prompt_total, 0)
    cached = max(usage.cached_total, 0)
    fresh = max(prompt - cached, 0)
    fresh_audio = min(max(usage.prompt_audio - usage.cached_audio, 0), fresh)
    cached_audio = min(max(usage.cached_audio, 0), cached)
    tool = max(usage.tool_use_prompt, 0)
    tool_audio = min(max(usage.tool_use_audio, 0), tool)

    terms = [
        (fresh - fresh_audio, p.input),
        (fresh_audio, p.audio_input_rate),
        (cached - cached_audio, p.cached_rate),
        (cached_audio, p.cached_audio_rate),
        (tool - tool_audio, p.input),
        (tool_audio, p.audio_input_rate),
        (max(usage.thoughts, 0), p.output),
        (max(usage.output_text, 0), p.output),
        (max(usage.output_image, 0), p.image_output_rate),
        (max(usage.output_audio, 0), p.audio_output_rate),
    ]
    return _to_nanos(terms)


def worst_case_nanos(prompt_tokens: int, max_output_tokens: int, price: Price) -> int:
    """An upper bound for a request before it runs, for budget reservations.

    The prompt at the highest input rate the model has and ``max_output_tokens`` at its
    highest output rate (text, image or audio), both from the long-context tier when the
    prompt exceeds the threshold.
    """
    if prompt_tokens < 0 or max_output_tokens < 0:
        raise ValueError("token counts must not be negative")
    p = price.tier(prompt_tokens)
    input_rate = max(p.input, p.audio_input_rate, p.cached_rate, p.cached_audio_rate)
    output_rate = max(p.output, p.image_output_rate, p.audio_output_rate)
    return _to_nanos([(prompt_tokens, input_rate), (max_output_tokens, output_rate)])


def format_usd(nanos: int) -> str:
    """Nano-USD as a decimal USD string with nine decimals: 123450 -> "0.000123450"."""
    sign = "-" if nanos < 0 else ""
    whole, frac = divmod(abs(nanos), NANOS_PER_USD)
    return f"{sign}{whole}.{frac:09d}"
