"""Request validation and normalisation: both casings in, camelCase out, paths in errors."""

from __future__ import annotations

import orjson
import pytest

from gemgate.errors import InvalidArgument
from gemgate.types import parse_request


def parse(body: object, method: str = "generateContent") -> dict:
    return parse_request(method, orjson.dumps(body))


def test_mixed_casing_normalised_structs_untouched() -> None:
    req = parse({
        "contents": [{"parts": [{"function_call": {"name": "f", "args": {"snake_key": 1, "camelKey": 2}}}], "role": "model"},
                     {"parts": [{"functionResponse": {"name": "f", "response": {"some_value": 3}}}]}],
        "system_instruction": {"parts": [{"text": "s"}]},
        "generationConfig": {"max_output_tokens": 5, "response_schema": {"type": "OBJECT", "property_ordering": ["a"]}},
        "tool_config": {"function_calling_config": {"mode": 2, "allowed_function_names": ["f"]}},
    })
    assert req["systemInstruction"] == {"parts": [{"text": "s"}]}
    assert req["contents"][0]["parts"][0]["functionCall"]["args"] == {"snake_key": 1, "camelKey": 2}
    assert req["contents"][1]["parts"][0]["functionResponse"]["response"] == {"some_value": 3}
    assert req["generationConfig"]["responseSchema"] == {"type": "OBJECT", "property_ordering": ["a"]}
    assert req["toolConfig"]["functionCallingConfig"] == {"mode": "ANY", "allowedFunctionNames": ["f"]}


def test_enums_by_number_and_int64_strings() -> None:
    req = parse({
        "contents": [{"parts": [{"text": "x"}]}],
        "safetySettings": [{"category": 8, "threshold": 4}],
        "generationConfig": {"seed": "42", "responseModalities": [1, "IMAGE"]},
    })
    assert req["safetySettings"] == [{"category": "HARM_CATEGORY_HATE_SPEECH", "threshold": "BLOCK_NONE"}]
    assert req["generationConfig"]["seed"] == 42
    assert req["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]


@pytest.mark.parametrize("data", ["aGVsbG8=", "aGVsbG8", "-_-_", "+/+/"])
def test_base64_variants_accepted(data: str) -> None:
    parse({"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": data}}]}]})


@pytest.mark.parametrize(
    "body,path",
    [
        ({"contents": [{"parts": [{"inlineData": {"mimeType": "x", "data": "a"}}]}]}, "contents[0].parts[0].inlineData.data"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topK": "many"}}, "generationConfig.topK"),
        ({"contents": [{"parts": [{"text": "x"}]}], "safetySettings": [{"category": "HARM_X"}]}, "safetySettings[0].category"),
        ({"contents": [{"role": "system", "parts": [{"text": "x"}]}]}, "contents[0].role"),
        ({"contents": [{"parts": []}]}, "contents[0].parts"),
        ({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"stopSequences": ["a"] * 6}}, "generationConfig.stopSequences"),
        ({"contents": [{"parts": [{"text": "x", "bogus": 1}]}]}, "contents[0].parts[0].bogus"),
    ],
)
def test_errors_name_the_field(body: object, path: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse(body)
    assert info.value.param == path


def test_same_field_in_two_casings_rejected() -> None:
    with pytest.raises(InvalidArgument, match="two casings"):
        parse({"contents": [{"parts": [{"text": "x"}]}], "generationConfig": {"topP": 0.1, "top_p": 0.2}})


def test_count_tokens_and_embed_shapes() -> None:
    assert parse({"contents": [{"parts": [{"text": "x"}]}]}, "countTokens")["contents"]
    inner = parse({"generate_content_request": {"model": "models/x", "contents": [{"parts": [{"text": "x"}]}]}}, "countTokens")
    assert inner["generateContentRequest"]["model"] == "models/x"
    batch = parse({"requests": [{"model": "models/e", "content": {"parts": [{"text": "a"}]}, "output_dimensionality": 8}]}, "batchEmbedContents")
    assert batch["requests"][0]["outputDimensionality"] == 8
    with pytest.raises(InvalidArgument):
        parse({"requests": []}, "batchEmbedContents")


def test_not_an_object() -> None:
    with pytest.raises(InvalidArgument):
        parse_request("generateContent", b"[1,2]")
    with pytest.raises(InvalidArgument):
        parse_request("generateContent", b"")
