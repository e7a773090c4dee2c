"""Property tests: the canonical Gemini form <-> Anthropic Messages.

- A canonical conversation made of what the Messages API can hold (text, images inline and
  by URL, PDFs, signed thoughts, calls with ids, results and errors, a system text) sent to
  an Anthropic upstream and read back by the Anthropic door is the same conversation.
- An Anthropic client's cache markers survive the trip to an Anthropic upstream (its bytes
  go unchanged), and Anthropic's ids and signatures survive a Gemini answer.
- What the Messages API cannot express is refused naming the Gemini field.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemgate.errors import InvalidArgument
from gemgate.translate.anthropic_outbound import gemini_to_messages
from gemgate.translate.anthropic_request import messages_to_gemini
from gemgate.types import normalise

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(min_size=1, max_size=20)
b64 = st.binary(min_size=1, max_size=30).map(lambda b: base64.b64encode(b).decode())
signature = st.binary(min_size=1, max_size=200).map(lambda b: base64.b64encode(b).decode())
args = st.dictionaries(st.text(min_size=1, max_size=6), st.one_of(st.integers(-9, 9), st.text(max_size=5)),
                       max_size=3)
media = st.one_of(
    st.builds(lambda m, d: {"inlineData": {"mimeType": m, "data": d}},
              st.sampled_from(["image/png", "image/jpeg", "image/webp", "application/pdf"]), b64),
    st.just({"fileData": {"mimeType": "image/png", "fileUri": "https://example.com/cat.png"}}),
)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    contents: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] = []
    for turn in range(draw(st.integers(1, 3))):
        results = []
        for fc in pending:
            key = draw(st.sampled_from(["result", "error"]))
            results.append({"functionResponse": {"id": fc["id"], "name": fc["name"], "response": {key: draw(text)}}})
        user = draw(st.lists(st.one_of(text.map(lambda t: {"text": t}), media), min_size=1, max_size=3))
        contents.append({"role": "user", "parts": results + user})
        parts: list[dict[str, Any]] = []
        if draw(st.booleans()):
            parts.append({"text": draw(text), "thought": True, "thoughtSignature": draw(signature)})
        if draw(st.booleans()):
            parts.append({"text": draw(text)})
        pending = [{"id": f"toolu_{turn}_{k}", "name": draw(st.sampled_from(["f", "g"])), "args": draw(args)}
                   for k in range(draw(st.integers(0, 2)))]
        parts += [{"functionCall": fc} for fc in pending]
        if parts:
            contents.append({"role": "model", "parts": parts})
    if pending:
        contents.append({"role": "user", "parts": [
            {"functionResponse": {"id": fc["id"], "name": fc["name"], "response": {"result": "ok"}}}
            for fc in pending]})
    request: dict[str, Any] = {"contents": contents, "generationConfig": {"maxOutputTokens": draw(st.integers(1, 9999))}}
    if draw(st.booleans()):
        request["systemInstruction"] = {"parts": [{"text": draw(text)}]}
    return request


@SETTINGS
@given(conversations())
def test_canonical_conversation_round_trips_through_an_anthropic_upstream(request: dict[str, Any]) -> None:
    canonical = normalise("GenerateContentRequest", request)
    body = gemini_to_messages(canonical, model="m", stream=False, default_max_tokens=1)
    back = normalise("GenerateContentRequest", messages_to_gemini(body))
    assert back == canonical


@SETTINGS
@given(st.lists(st.sampled_from(["system", "text", "image", "tool"]), min_size=1, max_size=4))
def test_cache_markers_reach_an_anthropic_upstream(where: list[str]) -> None:
    """The door reads cache_control anywhere and a Messages upstream gets the client's bytes
    (raw), so the markers arrive; the translation itself must not refuse them."""
    mark = {"type": "ephemeral"}
    blocks: list[dict[str, Any]] = [{"type": "text", "text": "a", **({"cache_control": mark} if "text" in where else {})}]
    if "image" in where:
        blocks.append({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"},
                       "cache_control": mark})
    body: dict[str, Any] = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": blocks}]}
    if "system" in where:
        body["system"] = [{"type": "text", "text": "sys", "cache_control": mark}]
    if "tool" in where:
        body["tools"] = [{"name": "f", "input_schema": {"type": "object"}, "cache_control": mark}]
    request = normalise("GenerateContentRequest", messages_to_gemini(body))
    assert request["contents"][0]["parts"][0] == {"text": "a"}


BASE = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
INEXPRESSIBLE: list[tuple[dict[str, Any], str]] = [
    ({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "audio/wav", "data": "AAAA"}}]}]},
     "contents[0].parts[0].inlineData.mimeType"),
    ({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "video/mp4", "data": "AAAA"}}]}]},
     "contents[0].parts[0].inlineData.mimeType"),
    ({"contents": [{"role": "user", "parts": [{"text": "a"}, {"fileData": {"mimeType": "video/mp4",
                                                                          "fileUri": "gs://b/v.mp4"}}]}]},
     "contents[0].parts[1].fileData.fileUri"),
    ({"contents": [{"role": "user", "parts": [{"text": "a"}]},
                   {"role": "model", "parts": [{"executableCode": {"language": "PYTHON", "code": "1"}}]}]},
     "contents[1].parts[0].executableCode"),
    ({**BASE, "tools": [{"googleSearch": {}}]}, "tools[0].googleSearch"),
    ({**BASE, "cachedContent": "cachedContents/abc"}, "cachedContent"),
    ({**BASE, "generationConfig": {"candidateCount": 2}}, "generationConfig.candidateCount"),
    ({**BASE, "generationConfig": {"responseModalities": ["IMAGE"]}}, "generationConfig.responseModalities"),
    ({**BASE, "generationConfig": {"temperature": 1.5}}, "generationConfig.temperature"),
    ({**BASE, "generationConfig": {"responseMimeType": "application/json"}}, "generationConfig.responseMimeType"),
    ({**BASE, "generationConfig": {"speechConfig": {}}}, "generationConfig.speechConfig"),
    ({**BASE, "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]},
     "safetySettings[0].threshold"),
    ({**BASE, "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f", "g"]}}},
     "toolConfig.functionCallingConfig.allowedFunctionNames"),
]


@pytest.mark.parametrize(("request_body", "field"), INEXPRESSIBLE)
def test_what_an_anthropic_upstream_cannot_express_is_refused_naming_it(request_body: dict[str, Any],
                                                                       field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        gemini_to_messages(normalise("GenerateContentRequest", request_body), model="m", stream=False,
                           default_max_tokens=10)
    assert err.value.param == field
