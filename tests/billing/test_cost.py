"""cost_nanos / worst_case_nanos / format_usd, with every expected figure worked out by hand.

Unit used throughout: a rate of R USD per 1M tokens costs R * 1000 nanos per token
(1 USD = 10^9 nanos, so R / 10^6 USD = R * 10^3 nanos). Bundled paid-tier rates used here:

  gemini-2.5-flash       input 0.30 (300/token)   audio 1.00 (1000)  output 2.50 (2500)
                         cached 0.03 (30)         cached audio 0.10 (100)
  gemini-2.5-flash-lite  input 0.10 (100)         audio 0.30 (300)   output 0.40 (400)
                         cached 0.01 (10)         cached audio 0.03 (30)
  gemini-2.5-pro         <=200k: input 1.25 (1250) output 10.00 (10000) cached 0.125 (125)
                         >200k:  input 2.50 (2500) output 15.00 (15000) cached 0.25 (250)
  gemini-3-flash-preview input 0.50 (500)         audio 1.00 (1000)  output 3.00 (3000)
  gemini-3-pro-image-preview input 2.00 (2000)    output 12.00 (12000) image out 120.00 (120000)
  gemini-3.1-flash-image-preview input 0.50 (500) output 3.00 (3000) image out 60.00 (60000)
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemgate.billing import Usage, cost_nanos, format_usd, worst_case_nanos
from gemgate.catalog import CatalogModel, Price, load_catalog


@pytest.fixture(scope="module")
def catalog() -> dict[str, CatalogModel]:
    return load_catalog()


def price_of(catalog: dict[str, CatalogModel], model: str) -> Price:
    return catalog[model].price


def test_text_only(catalog: dict[str, CatalogModel]) -> None:
    usage = Usage.from_metadata(
        {"promptTokenCount": 1000, "candidatesTokenCount": 500, "totalTokenCount": 1500}
    )
    # input  1000 x 300  =   300_000
    # output  500 x 2500 = 1_250_000
    # total               = 1_550_000 nanos ($0.00155)
    assert cost_nanos(usage, price_of(catalog, "gemini-2.5-flash")) == 1_550_000


def test_cached_prompt_billed_once_at_cached_rate(catalog: dict[str, CatalogModel]) -> None:
    usage = Usage.from_metadata(
        {
            "promptTokenCount": 10_000,  # includes the 4000 cached tokens
            "cachedContentTokenCount": 4000,
            "candidatesTokenCount": 200,
            "totalTokenCount": 10_200,
        }
    )
    # fresh  (10000 - 4000) = 6000 x 300 = 1_800_000
    # cached                  4000 x 30  =   120_000
    # output                   200 x 2500 =  500_000
    # total                              = 2_420_000 nanos
    assert cost_nanos(usage, price_of(catalog, "gemini-2.5-flash")) == 2_420_000


def test_tool_use_prompt_is_input(catalog: dict[str, CatalogModel]) -> None:
    usage = Usage.from_metadata(
        {
            "promptTokenCount": 1000,
            "toolUsePromptTokenCount": 3000,
            "toolUsePromptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 2500},
                {"modality": "AUDIO", "tokenCount": 500},
            ],
            "candidatesTokenCount": 100,
            "totalTokenCount": 4100,
        }
    )
    # prompt          1000 x 300  =   300_000
    # tool text       2500 x 300  =   750_000
    # tool audio       500 x 1000 =   500_000
    # output           100 x 2500 =   250_000
    # total                       = 1_800_000 nanos
    assert cost_nanos(usage, price_of(catalog, "gemini-2.5-flash")) == 1_800_000


def test_thoughts_billed_at_output_rate(catalog: dict[str, CatalogModel]) -> None:
    usage = Usage.from_metadata(
        {
            "promptTokenCount": 2000,
            "candidatesTokenCount": 300,  # excludes the thoughts
            "thoughtsTokenCount": 1500,
            "totalTokenCount": 3800,
        }
    )
    # input    2000 x 1250  =  2_500_000
    # thoughts 1500 x 10000 = 15_000_000
    # output    300 x 10000 =  3_000_000
    # total                 = 20_500_000 nanos ($0.0205)
    assert cost_nanos(usage, price_of(catalog, "gemini-2.5-pro")) == 20_500_000


def test_audio_input_at_audio_rate(catalog: dict[str, CatalogModel]) -> None:
    usage = Usage.from_metadata(
        {
            "promptTokenCount": 5000,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 200},
                {"modality": "AUDIO", "tokenCount": 4800},
            ],
            "candidatesTokenCount": 400,
            "totalTokenCount": 5400,
        }
    )
    # text    200 x 500  =   100_000
    # audio  4800 x 1000 = 4_800_000
    # output  400 x 3000 = 1_200_000
    # total              = 6_100_000 nanos
    assert cost_nanos(usage, price_of(catalog, "gemini-3-flash-preview")) == 6_100_000


def test_cached_audio_at_cached_audio_rate(catalog: dict[str, CatalogModel]) -> None:
    usage = Usage.from_metadata(
        {
            "promptTokenCount": 10_000,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 2000},
                {"modality": "AUDIO", "tokenCount": 8000},
            ],
            "cachedContentTokenCount": 6000,
            "cacheTokensDetails": [{"modality": "AUDIO", "tokenCount": 6000}],
            "candidatesTokenCount": 100,
        }
    )
    # fresh text   2000                 x 100 =   200_000
    # fresh audio  (8000 - 6000) = 2000 x 300 =   600_000
    # cached audio 6000                 x 30  =   180_000
    # output        100                 x 400 =    40_000
    # total                                   = 1_020_000 nanos
    assert cost_nanos(usage, price_of(catalog, "gemini-2.5-flash-lite")) == 1_020_000


def test_image_model_text_and_image_output_with_thoughts(
    catalog: dict[str, CatalogModel],
) -> None:
    usage = Usage.from_metadata(
        {
            "promptTokenCount": 600,
            "promptTokensDetails": [
                {"modality": "TEXT", "tokenCount": 40},
                {"modality": "IMAGE", "tokenCount": 560},
            ],
            "candidatesTokenCount": 1130,
            "candidatesTokensDetails": [
                {"modality": "TEXT", "tokenCount": 10},
                {"modality": "IMAGE", "tokenCount": 1120},
            ],
            "thoughtsTokenCount": 250,
            "totalTokenCount": 1980,
        }
    )
    assert (usage.output_text, usage.output_image, usage.thoughts) == (10, 1120, 250)
    # input (text + image)  600 x 2000   =   1_200_000
    # thoughts              250 x 12000  =   3_000_000
    # output text            10 x 12000  =     120_000
    # output image         1120 x 120000 = 134_400_000  (Google: $0.134 per 1K image)
    # total                              = 138_720_000 nanos ($0.13872)
    assert cost_nanos(usage, price_of(catalog, "gemini-3-pro-image-preview")) == 138_720_000


def test_long_context_tier_on_2_5_pro(catalog: dict[str, CatalogModel]) -> None:
    usage = Usage.from_metadata(
        {
            "promptTokenCount": 250_000,  # > 200k, cached included
            "cachedContentTokenCount": 50_000,
            "candidatesTokenCount": 1000,
            "thoughtsTokenCount": 2000,
        }
    )
    # every rate from the >200k tier:
    # fresh  200_000 x 2500  = 500_000_000
    # cached  50_000 x 250   =  12_500_000
    # thoughts + output (2000 + 1000) = 3000 x 15000 = 45_000_000
    # total                  = 557_500_000 nanos ($0.5575)
    assert cost_nanos(usage, price_of(catalog, "gemini-2.5-pro")) == 557_500_000


def test_long_context_threshold_is_exclusive(catalog: dict[str, CatalogModel]) -> None:
    price = price_of(catalog, "gemini-2.5-pro")
    # exactly 200_000 is NOT above the threshold: 200_000 x 1250 = 250_000_000
    assert cost_nanos(Usage(prompt_text=200_000), price) == 250_000_000
    # 200_001 is: 200_001 x 2500 = 500_002_500
    assert cost_nanos(Usage(prompt_text=200_001), price) == 500_002_500


def test_tool_use_prompt_counts_toward_the_tier(catalog: dict[str, CatalogModel]) -> None:
    usage = Usage(prompt_text=199_000, tool_use_prompt=2000, tool_use_text=2000)
    # 199_000 + 2000 = 201_000 > 200_000 -> long tier
    # (199_000 + 2000) x 2500 = 502_500_000
    assert cost_nanos(usage, price_of(catalog, "gemini-2.5-pro")) == 502_500_000


def test_local_gemma_costs_nothing(catalog: dict[str, CatalogModel]) -> None:
    usage = Usage.from_metadata(
        {"promptTokenCount": 12_345, "candidatesTokenCount": 678, "thoughtsTokenCount": 9}
    )
    assert cost_nanos(usage, price_of(catalog, "gemma-3-270m")) == 0


def test_no_cached_rate_falls_back_to_input(catalog: dict[str, CatalogModel]) -> None:
    # gemini-3.1-flash-image-preview publishes no caching price.
    usage = Usage(prompt_text=1000, cached_total=400, cached_text=400)
    # fresh 600 x 500 + cached 400 x 500 (no discount) = 300_000 + 200_000 = 500_000
    assert cost_nanos(usage, price_of(catalog, "gemini-3.1-flash-image-preview")) == 500_000


def test_rounds_once_half_up_at_the_end() -> None:
    half_nano = Price(input=Decimal("0.0005"), output=Decimal("0.0005"))  # 0.5 nano per token
    # 1 x 0.5 + 1 x 0.5 = 1.0 -> 1 (rounding each term first would give 2)
    assert cost_nanos(Usage(prompt_text=1, output_text=1), half_nano) == 1
    # 1 x 0.5 = 0.5 -> 1 (half-up)
    assert cost_nanos(Usage(prompt_text=1), half_nano) == 1
    odd = Price(input=Decimal("0.0375"), output=Decimal("0"))  # 37.5 nanos per token
    # 3 x 37.5 = 112.5 -> 113
    assert cost_nanos(Usage(prompt_text=3), odd) == 113


def test_output_audio_falls_back_to_output_rate(catalog: dict[str, CatalogModel]) -> None:
    usage = Usage(output_audio=100)
    # no audio output rate on 2.5 Flash: 100 x 2500 = 250_000
    assert cost_nanos(usage, price_of(catalog, "gemini-2.5-flash")) == 250_000


def test_worst_case(catalog: dict[str, CatalogModel]) -> None:
    # 2.5 Flash: highest input rate is audio 1.00 (1000/token), output 2.50 (2500)
    # 10_000 x 1000 + 1000 x 2500 = 10_000_000 + 2_500_000 = 12_500_000
    assert worst_case_nanos(10_000, 1000, price_of(catalog, "gemini-2.5-flash")) == 12_500_000
    # 2.5 Pro with a 300k prompt -> long tier: input 2.50 (2500), output 15.00 (15000)
    # 300_000 x 2500 + 8192 x 15000 = 750_000_000 + 122_880_000 = 872_880_000
    assert worst_case_nanos(300_000, 8192, price_of(catalog, "gemini-2.5-pro")) == 872_880_000
    # 2.5 Pro with a 100k prompt -> base tier: 100_000 x 1250 + 8192 x 10000
    # = 125_000_000 + 81_920_000 = 206_920_000
    assert worst_case_nanos(100_000, 8192, price_of(catalog, "gemini-2.5-pro")) == 206_920_000
    # 3.1 Flash Image: highest output rate is the image rate 60.00 (60000/token)
    # 1000 x 500 + 2520 x 60000 = 500_000 + 151_200_000 = 151_700_000
    image_price = price_of(catalog, "gemini-3.1-flash-image-preview")
    assert worst_case_nanos(1000, 2520, image_price) == 151_700_000
    assert worst_case_nanos(5000, 5000, price_of(catalog, "gemma-3-270m")) == 0


def test_worst_case_bounds_the_actual_cost(catalog: dict[str, CatalogModel]) -> None:
    price = price_of(catalog, "gemini-3-pro-image-preview")
    usage = Usage(prompt_text=40, prompt_image=560, thoughts=250, output_text=10, output_image=1120)
    assert cost_nanos(usage, price) <= worst_case_nanos(600, 250 + 10 + 1120, price)


def test_worst_case_rejects_negative_counts(catalog: dict[str, CatalogModel]) -> None:
    with pytest.raises(ValueError):
        worst_case_nanos(-1, 10, price_of(catalog, "gemini-2.5-flash"))


def test_format_usd() -> None:
    assert format_usd(123_450) == "0.000123450"
    assert format_usd(0) == "0.000000000"
    assert format_usd(1_500_000_000) == "1.500000000"
    assert format_usd(557_500_000) == "0.557500000"
    assert format_usd(12_000_000_001) == "12.000000001"
    assert format_usd(-5) == "-0.000000005"


@settings(max_examples=300, deadline=None)
@given(
    terms=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=10**9),
            st.decimals(min_value=0, max_value=1000, places=9, allow_nan=False, allow_infinity=False),
        ),
        max_size=10,
    )
)
def test_integer_arithmetic_equals_decimal(terms: list[tuple[int, Decimal]]) -> None:
    from gemgate.billing.cost import _to_nanos, _to_nanos_decimal

    assert _to_nanos(terms) == _to_nanos_decimal(terms)


def test_rates_beyond_nine_places_take_the_decimal_path() -> None:
    from gemgate.billing.cost import _to_nanos

    # 0.0000000005 USD/1M tokens x 3 tokens = 0.0015 nanos -> rounds to 0; x 1e6 -> 1500 nanos
    assert _to_nanos([(3, Decimal("0.0000000005"))]) == 0
    assert _to_nanos([(1_000_000, Decimal("0.0000000015"))]) == 2  # 1.5 nanos rounds half up
