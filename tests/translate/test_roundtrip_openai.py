"""Property tests: OpenAI chat <-> the canonical Gemini form.

- A Gemini answer (thoughts, text, images, parallel calls with the first signed) rendered
  for an OpenAI client, unary or streamed in any cut, and sent back by a client that keeps
  only OpenAI's own fields, gives Gemini its calls back exactly: ids, arguments and the
  thought signature.
- A chat request (images by data URI and URL, tool calls, signatures in ``extra_content``
  or in the id, tool results) -> canonical -> an OpenAI upstream's request keeps every one.
- What an OpenAI-compatible upstream cannot express is refused naming the Gemini field.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemgate.errors import InvalidArgument
from gemgate.translate import (
    ChatStreamEncoder,
    chat_to_gemini,
    gemini_to_chat,
    gemini_to_chat_response,
)
from gemgate.translate.openai_ids import signed_call_id, split_call_id
from gemgate.types import normalise

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(min_size=1, max_size=20)
name = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
signature = st.binary(min_size=1, max_size=600).map(lambda b: base64.b64encode(b).decode())
b64 = st.binary(min_size=1, max_size=24).map(lambda b: base64.b64encode(b).decode())
args = st.dictionaries(st.text(max_size=6), st.one_of(st.integers(-9, 9), st.text(max_size=5), st.booleans()),
                       max_size=3)
call_id = st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9_\-.:]{1,40}", fullmatch=True))


@st.composite
def answers(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The parts of one Gemini step: thoughts, text, an image, then calls (distinct ids,
    the first signed as Gemini 3 does, sometimes more)."""
    parts: list[dict[str, Any]] = []
    if draw(st.booleans()):
        parts.append({"text": draw(text), "thought": True})
    if draw(st.booleans()):
        parts.append({"text": draw(text)})
    ids = draw(st.lists(call_id, min_size=1, max_size=4, unique_by=lambda i: i or object()))
    for k, ident in enumerate(ids):
        fc: dict[str, Any] = {"name": draw(name), "args": draw(args)}
        if ident is not None:
            fc["id"] = ident
        part: dict[str, Any] = {"functionCall": fc}
        if k == 0 or draw(st.integers(0, 4)) == 0:
            part["thoughtSignature"] = draw(signature)
        parts.append(part)
    return parts


def _strip(message: dict[str, Any]) -> dict[str, Any]:
    """The assistant message as a client that knows only OpenAI's fields sends it back."""
    calls = [{"id": c["id"], "type": "function",
              "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
             for c in message.get("tool_calls") or ()]
    return {"role": "assistant", "content": message.get("content"), "tool_calls": calls}


def _next_request(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Send the message back with a result for each call; the model parts Gemini gets."""
    messages: list[Any] = [{"role": "user", "content": "go"}, message]
    messages += [{"role": "tool", "tool_call_id": c["id"], "content": "{}"} for c in message["tool_calls"]]
    _model, request = chat_to_gemini({"model": "m", "messages": messages})
    request = normalise("GenerateContentRequest", request)
    calls = [p for p in request["contents"][1]["parts"] if "functionCall" in p]
    responses = [p["functionResponse"] for p in request["contents"][2]["parts"]]
    assert [r["id"] for r in responses] == [c["functionCall"]["id"] for c in calls]
    return calls


def _expected(parts: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls of ``parts`` as they should come back (a call without an id gets the one the
    client was given)."""
    out = []
    for part, back in zip([p for p in parts if "functionCall" in p], got, strict=True):
        fc = {"id": part["functionCall"].get("id", back["functionCall"]["id"]), **part["functionCall"]}
        out.append({"functionCall": {"id": fc["id"], "name": fc["name"], "args": fc["args"]},
                    **({"thoughtSignature": part["thoughtSignature"]} if "thoughtSignature" in part else {})})
    return out


@SETTINGS
@given(answers())
def test_unary_answer_survives_a_stripping_client(parts: list[dict[str, Any]]) -> None:
    resp = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}
    out = gemini_to_chat_response(resp, model="m", request_id="x", created=1)
    message = out["choices"][0]["message"]
    got = _next_request(_strip(message))
    assert got == _expected(parts, got)
    assert len({c["id"] for c in message["tool_calls"]}) == len(message["tool_calls"])
    # a client that keeps Google's extension gets the same
    assert _next_request({**message, "tool_calls": message["tool_calls"]}) == got


@SETTINGS
@given(answers(), st.lists(st.integers(0, 8), max_size=4))
def test_streamed_answer_survives_a_stripping_client(parts: list[dict[str, Any]], cuts: list[int]) -> None:
    bounds = sorted({c % (len(parts) + 1) for c in cuts} | {0, len(parts)})
    chunks = [{"candidates": [{"content": {"role": "model", "parts": parts[a:b]}, "index": 0}]}
              for a, b in itertools.pairwise(bounds)]
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    encoder = ChatStreamEncoder("m", "x", 1)
    calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for event in encoder.feed(chunk):
            for tc in event["choices"][0]["delta"].get("tool_calls") or ():
                calls[tc["index"]] = {"id": tc["id"], "type": "function", "function": tc["function"]}
    message = {"role": "assistant", "content": None, "tool_calls": [calls[k] for k in sorted(calls)]}
    got = _next_request(_strip(message))
    assert got == _expected(parts, got)


@SETTINGS
@given(st.text(max_size=80), st.one_of(st.none(), signature))
def test_ids_decode_to_what_they_encode(ident: str, sig: str | None) -> None:
    encoded = signed_call_id(ident, sig)
    if sig is None:
        assert encoded == ident
    else:
        assert split_call_id(encoded) == (ident, sig)
        assert set(encoded) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
        assert not split_call_id(encoded[:-1])[1] or split_call_id(encoded[:-1])[0] == ident  # cut: no garbage


PNG = base64.b64encode(b"\x89PNG fake").decode()


@st.composite
def chat_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A client's conversation: user turns with text and images, assistant turns calling
    tools (signed by extra_content or by id), and their results."""
    messages: list[dict[str, Any]] = []
    for turn in range(draw(st.integers(1, 3))):
        content: list[dict[str, Any]] = [{"type": "text", "text": draw(text)}]
        for _ in range(draw(st.integers(0, 2))):
            url = draw(st.sampled_from([f"data:image/png;base64,{draw(b64)}", "https://example.com/cat.png"]))
            content.append({"type": "image_url", "image_url": {"url": url}})
        messages.append({"role": "user", "content": content})
        calls = []
        for k in range(draw(st.integers(0, 3))):
            own, sig = f"call_{turn}_{k}", draw(st.one_of(st.none(), signature))
            how = draw(st.sampled_from(["extra", "id"]))
            call: dict[str, Any] = {"id": signed_call_id(own, sig) if how == "id" else own, "type": "function",
                                    "function": {"name": draw(name), "arguments": json.dumps(draw(args))}}
            if sig and how == "extra":
                call["extra_content"] = {"google": {"thought_signature": sig}}
            calls.append(call)
        if calls:
            messages.append({"role": "assistant", "content": draw(st.none() | text), "tool_calls": calls})
            messages += [{"role": "tool", "tool_call_id": c["id"], "content": json.dumps(draw(args))} for c in calls]
    return {"model": "m", "messages": messages}


def _view(messages: list[dict[str, Any]]) -> list[Any]:
    """What a conversation says: per message its role, texts, images, calls (own id, name,
    arguments, signature) and results (own id, content)."""
    out: list[Any] = []
    for msg in messages:
        content = msg.get("content")
        items = content if isinstance(content, list) else [{"type": "text", "text": content}] if content else []
        texts = [i["text"] for i in items if i["type"] == "text"]
        images = [i["image_url"]["url"] for i in items if i["type"] == "image_url"]
        calls = []
        for c in msg.get("tool_calls") or ():
            own, sig = split_call_id(c["id"])
            sig = ((c.get("extra_content") or {}).get("google") or {}).get("thought_signature") or sig
            calls.append((own, c["function"]["name"], json.loads(c["function"]["arguments"]), sig))
        ref = split_call_id(msg["tool_call_id"])[0] if "tool_call_id" in msg else None
        result = json.loads(content) if msg["role"] == "tool" else None
        out.append((msg["role"], texts if msg["role"] != "tool" else [], images, calls, ref, result))
    return out


@SETTINGS
@given(chat_requests())
def test_chat_request_reaches_an_openai_upstream_whole(body: dict[str, Any]) -> None:
    _model, request = chat_to_gemini(body)
    upstream = gemini_to_chat(normalise("GenerateContentRequest", request), model="m", stream=False)
    assert _view(upstream["messages"]) == _view(body["messages"])
    ids = [c["id"] for m in upstream["messages"] for c in m.get("tool_calls") or ()]
    assert all(not i.startswith("gts1_") for i in ids)  # upstreams see the calls' own ids


BASE = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
INEXPRESSIBLE: list[tuple[dict[str, Any], str]] = [
    ({"contents": [{"role": "user", "parts": [{"text": "a"}, {"fileData": {"mimeType": "video/mp4",
                                                                          "fileUri": "gs://b/v.mp4"}}]}]},
     "contents[0].parts[1].fileData"),
    ({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "video/mp4", "data": "AAAA"}}]}]},
     "contents[0].parts[0].inlineData.mimeType"),
    ({"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "audio/flac", "data": "AAAA"}}]}]},
     "contents[0].parts[0].inlineData.mimeType"),
    ({"contents": [{"role": "user", "parts": [{"text": "a"}]},
                   {"role": "model", "parts": [{"executableCode": {"language": "PYTHON", "code": "1"}}]}]},
     "contents[1].parts[0].executableCode"),
    ({**BASE, "tools": [{"googleSearch": {}}]}, "tools[0].googleSearch"),
    ({**BASE, "tools": [{"codeExecution": {}}]}, "tools[0].codeExecution"),
    ({**BASE, "cachedContent": "cachedContents/abc"}, "cachedContent"),
    ({**BASE, "generationConfig": {"responseModalities": ["AUDIO"]}}, "generationConfig.responseModalities"),
    ({**BASE, "generationConfig": {"speechConfig": {}}}, "generationConfig.speechConfig"),
    ({**BASE, "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_LOW_AND_ABOVE"}]},
     "safetySettings[0].threshold"),
    ({**BASE, "toolConfig": {"functionCallingConfig": {"mode": "VALIDATED"}}},
     "toolConfig.functionCallingConfig.mode"),
]


@pytest.mark.parametrize(("request_body", "field"), INEXPRESSIBLE)
def test_what_an_openai_upstream_cannot_express_is_refused_naming_it(request_body: dict[str, Any],
                                                                    field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        gemini_to_chat(normalise("GenerateContentRequest", request_body), model="m", stream=False)
    assert err.value.param == field
