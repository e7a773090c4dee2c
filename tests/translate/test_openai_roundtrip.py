"""Round trips through the OpenAI translation keep what matters (property tests).

- Gemini request -> gemini_to_chat -> chat_to_gemini keeps text, roles, tool calls with
  their arguments, function responses and inline media.
- OpenAI response -> chat_response_to_gemini -> gemini_to_chat_response keeps content,
  reasoning, tool calls, usage and finish reasons.
- OpenAI stream -> ChatStreamDecoder -> ChatStreamEncoder keeps the same.
"""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemgate.translate import (
    ChatStreamDecoder,
    ChatStreamEncoder,
    chat_response_to_gemini,
    chat_to_gemini,
    gemini_to_chat,
    gemini_to_chat_response,
)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(min_size=1, max_size=30)
name = st.from_regex(r"[a-z][a-z0-9_]{0,11}", fullmatch=True)
scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53), max_value=2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
)
json_value = st.recursive(
    scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
json_object = st.dictionaries(st.text(max_size=8), json_value, max_size=4)
b64 = st.binary(min_size=1, max_size=24).map(lambda b: base64.b64encode(b).decode())
MEDIA = ["image/png", "image/jpeg", "image/webp", "audio/wav", "audio/mp3", "application/pdf"]
inline = st.builds(
    lambda mime, data: {"inlineData": {"mimeType": mime, "data": data}}, st.sampled_from(MEDIA), b64
)
user_part = st.one_of(text.map(lambda t: {"text": t}), inline)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    contents: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        contents.append(
            {"role": "user", "parts": draw(st.lists(user_part, min_size=1, max_size=3))}
        )
        if not draw(st.booleans()):
            continue
        parts: list[dict[str, Any]] = []
        if draw(st.booleans()):
            parts.append({"text": draw(text), "thought": True})
        if draw(st.booleans()):
            parts.append({"text": draw(text)})
        calls = draw(st.lists(st.tuples(name, json_object, st.booleans()), max_size=3))
        for k, (fname, args, with_id) in enumerate(calls):
            call: dict[str, Any] = {"name": fname, "args": args}
            if with_id:
                call["id"] = f"id{len(contents)}_{k}"
            parts.append({"functionCall": call})
        if not parts:
            parts.append({"text": draw(text)})
        contents.append({"role": "model", "parts": parts})
        if calls:
            responses = []
            for part in parts:
                fc = part.get("functionCall")
                if fc is None:
                    continue
                fr: dict[str, Any] = {"name": fc["name"], "response": draw(json_object)}
                if "id" in fc:
                    fr["id"] = fc["id"]
                responses.append({"functionResponse": fr})
            contents.append({"role": "user", "parts": responses})
    request: dict[str, Any] = {"contents": contents}
    system = draw(st.lists(text, max_size=2))
    if system:
        request["systemInstruction"] = {"parts": [{"text": t} for t in system]}
    return request


def _normal(content: dict[str, Any]) -> tuple[Any, ...]:
    """A turn as (role, texts, thoughts, calls, responses, media), ids kept where given."""
    texts: list[str] = []
    thoughts: list[str] = []
    calls: list[tuple[str, Any]] = []
    responses: list[tuple[str, Any]] = []
    media: list[tuple[str, str]] = []
    for part in content["parts"]:
        if "functionCall" in part:
            fc = part["functionCall"]
            calls.append((fc["name"], fc["args"]))
        elif "functionResponse" in part:
            fr = part["functionResponse"]
            responses.append((fr["name"], fr["response"]))
        elif "inlineData" in part:
            mime = part["inlineData"]["mimeType"]
            media.append((mime, part["inlineData"]["data"]))
            texts.append("\0media")
        elif part.get("thought"):
            thoughts.append(part["text"])
        else:
            texts.append(part["text"])
    role = content.get("role", "user")
    if role == "model":  # OpenAI holds one text string per assistant message
        texts = ["".join(texts)] if texts else []
    return role, texts, "".join(thoughts), calls, responses, media


@SETTINGS
@given(conversations())
def test_gemini_request_round_trip(request: dict[str, Any]) -> None:
    body = gemini_to_chat(request, model="gpt-x", stream=False)
    json.dumps(body)  # plain JSON all the way
    model, back = chat_to_gemini(body)
    assert model == "gpt-x"
    assert [_normal(c) for c in back["contents"]] == [_normal(c) for c in request["contents"]]
    if "systemInstruction" in request:
        want = "\n\n".join(p["text"] for p in request["systemInstruction"]["parts"])
        assert back["systemInstruction"] == {"parts": [{"text": want}]}
    else:
        assert "systemInstruction" not in back
    # every function response is paired with the call it answers, ids preserved when given
    calls_by_id: dict[str, str] = {}
    for orig, new in zip(request["contents"], back["contents"], strict=True):
        for o, n in zip(orig["parts"], new["parts"], strict=True):
            if "functionCall" in n:
                calls_by_id[n["functionCall"]["id"]] = n["functionCall"]["name"]
                if "id" in o["functionCall"]:
                    assert n["functionCall"]["id"] == o["functionCall"]["id"]
            if "functionResponse" in n:
                fr = n["functionResponse"]
                assert calls_by_id[fr["id"]] == fr["name"]
                if "id" in o["functionResponse"]:
                    assert fr["id"] == o["functionResponse"]["id"]


def _tool_call(i: int, n: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"call_{i}",
        "type": "function",
        "function": {"name": n, "arguments": json.dumps(args)},
    }


tool_call = st.builds(_tool_call, st.integers(min_value=0, max_value=10**6), name, json_object)


@st.composite
def chat_responses(draw: st.DrawFn) -> dict[str, Any]:
    choices = []
    for index in range(draw(st.integers(min_value=1, max_value=3))):
        calls = draw(st.lists(tool_call, max_size=3, unique_by=lambda c: str(c["id"])))
        message: dict[str, Any] = {"role": "assistant", "content": draw(st.none() | text)}
        reasoning = draw(st.none() | text)
        if reasoning is not None:
            message["reasoning_content"] = reasoning
        if calls:
            message["tool_calls"] = calls
            finish = "tool_calls"
        else:
            finish = draw(st.sampled_from(["stop", "length", "content_filter"]))
        choices.append(
            {"index": index, "message": message, "logprobs": None, "finish_reason": finish}
        )
    prompt = draw(st.integers(min_value=0, max_value=10**6))
    completion = draw(st.integers(min_value=0, max_value=10**6))
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {
            "cached_tokens": draw(st.integers(min_value=0, max_value=prompt))
        },
        "completion_tokens_details": {
            "reasoning_tokens": draw(st.integers(min_value=0, max_value=completion))
        },
    }
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-x",
        "choices": choices,
        "usage": usage,
    }


def _choice_view(choice: dict[str, Any]) -> tuple[Any, ...]:
    msg = choice["message"]
    calls = [
        (c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
        for c in msg.get("tool_calls") or []
    ]
    return (
        choice["index"],
        msg.get("content") or None,
        msg.get("reasoning_content") or None,
        calls,
        choice["finish_reason"],
    )


@SETTINGS
@given(chat_responses())
def test_chat_response_round_trip(resp: dict[str, Any]) -> None:
    gemini = chat_response_to_gemini(resp)
    back = gemini_to_chat_response(gemini, model="gpt-x", request_id="chatcmpl-x", created=1)
    assert [_choice_view(c) for c in back["choices"]] == [_choice_view(c) for c in resp["choices"]]
    assert back["usage"] == resp["usage"]


def _stream_of(resp: dict[str, Any], draw_split: Any) -> list[dict[str, Any]]:
    """An OpenAI stream carrying ``resp``: fragments as OpenAI sends them, then usage."""
    head = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "gpt-x"}
    chunks: list[dict[str, Any]] = []

    def push(index: int, delta: dict[str, Any], finish: str | None = None) -> None:
        chunks.append(
            {**head, "choices": [{"index": index, "delta": delta, "finish_reason": finish}]}
        )

    for choice in resp["choices"]:
        i = choice["index"]
        msg = choice["message"]
        push(i, {"role": "assistant", "content": ""})
        for field in ("reasoning_content", "content"):
            value = msg.get(field)
            for piece in draw_split(value or ""):
                push(i, {field: piece})
        for k, call in enumerate(msg.get("tool_calls") or []):
            fn = call["function"]
            push(
                i,
                {
                    "tool_calls": [
                        {
                            "index": k,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    ]
                },
            )
            for piece in draw_split(fn["arguments"]):
                push(i, {"tool_calls": [{"index": k, "function": {"arguments": piece}}]})
        push(i, {}, choice["finish_reason"])
    chunks.append({**head, "choices": [], "usage": resp["usage"]})
    return chunks


@SETTINGS
@given(chat_responses(), st.data())
def test_stream_round_trip(resp: dict[str, Any], data: st.DataObject) -> None:
    def split(s: str) -> list[str]:
        cuts = sorted(data.draw(st.lists(st.integers(min_value=0, max_value=len(s)), max_size=3)))
        bounds = [0, *cuts, len(s)]
        return [s[a:b] for a, b in itertools.pairwise(bounds) if b > a]

    decoder = ChatStreamDecoder()
    encoder = ChatStreamEncoder("gpt-x", "chatcmpl-x", 1, include_usage=True)
    out: list[dict[str, Any]] = []
    for chunk in _stream_of(resp, split):
        for g in decoder.feed(chunk):
            out.extend(encoder.feed(g))
    for g in decoder.finish():
        out.extend(encoder.feed(g))
    out.extend(encoder.finish())

    # re-assemble the OpenAI stream the way a client does
    merged: dict[int, dict[str, Any]] = {}
    for chunk in out:
        for choice in chunk["choices"]:
            m = merged.setdefault(
                choice["index"], {"content": "", "reasoning": "", "calls": {}, "finish": None}
            )
            delta = choice["delta"]
            m["content"] += delta.get("content") or ""
            m["reasoning"] += delta.get("reasoning_content") or ""
            for tc in delta.get("tool_calls") or []:
                m["calls"][tc["index"]] = (
                    tc["id"],
                    tc["function"]["name"],
                    json.loads(tc["function"]["arguments"]),
                )
            if choice["finish_reason"]:
                m["finish"] = choice["finish_reason"]
    got = [
        (
            i,
            m["content"] or None,
            m["reasoning"] or None,
            [m["calls"][k] for k in sorted(m["calls"])],
            m["finish"],
        )
        for i, m in sorted(merged.items())
    ]
    assert got == [_choice_view(c) for c in resp["choices"]]
    assert out[-1]["choices"] == [] and out[-1]["usage"] == resp["usage"]
