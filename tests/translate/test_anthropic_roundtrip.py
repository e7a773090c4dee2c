"""Property tests: Anthropic Messages requests and answers round-trip through the canonical
Gemini form with nothing dropped that the other side can express (text, images, PDFs, tool
ids, tool results and errors, thinking and thought signatures), and a stream says what the
complete answer says."""

from __future__ import annotations

import base64
import itertools
import json
from typing import Any

from anthropic import types as atypes
from anthropic._models import construct_type
from anthropic.lib.streaming._messages import accumulate_event
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.fakes.anthropic_upstream import _events

from gemgate.errors import InvalidArgument
from gemgate.translate.anthropic_outbound import gemini_to_messages
from gemgate.translate.anthropic_request import Untranslatable, messages_to_gemini
from gemgate.translate.anthropic_response import gemini_to_message, message_to_gemini
from gemgate.translate.anthropic_stream import MessageStreamDecoder, MessageStreamEncoder
from gemgate.types import normalise
from gemgate.types.validate import check_generate

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

text = st.text(min_size=1, max_size=30)
signature = st.binary(min_size=1, max_size=40).map(lambda b: base64.b64encode(b).decode())
b64 = st.binary(min_size=1, max_size=30).map(lambda b: base64.b64encode(b).decode())
image = st.builds(
    lambda mime, data: {"type": "image", "source": {"type": "base64", "media_type": mime, "data": data}},
    st.sampled_from(["image/png", "image/jpeg", "image/webp", "image/gif"]), b64,
)
pdf = b64.map(lambda d: {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": d}})
text_block = text.map(lambda t: {"type": "text", "text": t})
thinking = st.builds(lambda t, s: {"type": "thinking", "thinking": t, "signature": s}, text, signature)
args = st.dictionaries(st.text(min_size=1, max_size=8), st.one_of(st.integers(-9, 9), text, st.booleans()), max_size=3)


@st.composite
def conversations(draw: st.DrawFn) -> dict[str, Any]:
    """Alternating turns; each assistant turn may think, talk and call tools, answered by
    the next user turn's tool results (first in it, as Anthropic wants)."""
    messages: list[dict[str, Any]] = []
    pending: list[str] = []
    for turn in range(draw(st.integers(1, 3))):
        results = [
            {"type": "tool_result", "tool_use_id": tid, "content": draw(text),
             **({"is_error": True} if draw(st.booleans()) else {})}
            for tid in pending
        ]
        user = draw(st.lists(st.one_of(text_block, image, pdf), min_size=1, max_size=3))
        messages.append({"role": "user", "content": results + user})
        blocks = draw(st.lists(st.one_of(thinking, text_block), max_size=3))
        pending = [f"toolu_{turn}_{k}" for k in range(draw(st.integers(0, 2)))]
        blocks += [{"type": "tool_use", "id": tid, "name": draw(st.sampled_from(["f", "g"])), "input": draw(args)}
                   for tid in pending]
        if blocks:
            messages.append({"role": "assistant", "content": blocks})
    if messages[-1]["role"] == "assistant" and pending:
        messages.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": t, "content": "ok"}
                                                      for t in pending]})
    body: dict[str, Any] = {"model": "m", "max_tokens": draw(st.integers(1, 4096)), "messages": messages}
    if draw(st.booleans()):
        body["system"] = draw(text)
    return body


@SETTINGS
@given(conversations())
def test_request_round_trip(body: dict[str, Any]) -> None:
    canonical = normalise("GenerateContentRequest", messages_to_gemini(body))
    back = gemini_to_messages(canonical, model="m", stream=False, default_max_tokens=1)
    assert back["messages"] == body["messages"]
    assert back["max_tokens"] == body["max_tokens"]
    assert back.get("system") == body.get("system")


@st.composite
def gemini_parts(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The parts of a Gemini answer in the form a client's next turn gives back: texts and
    thoughts (a run of them ends at a signature), and calls with ids, any part signed."""
    parts: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["text", "thought", "call"]))
        sig = draw(st.one_of(st.none(), signature))
        prev = parts[-1] if parts else {}
        if kind == "call":
            part: dict[str, Any] = {"functionCall": {"id": draw(st.uuids()).hex, "name": "f", "args": draw(args)}}
        elif kind == "thought":
            if prev.get("thought") and "thoughtSignature" not in prev:
                continue  # Anthropic's blocks would join the two
            part = {"text": draw(text), "thought": True}
        else:
            if "text" in prev and not prev.get("thought") and sig is None:
                continue
            part = {"text": draw(text)}
        if sig:
            part["thoughtSignature"] = sig
        parts.append(part)
    return parts


@SETTINGS
@given(gemini_parts())
def test_signatures_survive_an_anthropic_client(parts: list[dict[str, Any]]) -> None:
    """Gemini's answer -> Anthropic message -> the client's next turn -> Gemini: the model's
    parts come back exactly, each signature on the part it came with."""
    answer = {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}
    msg = gemini_to_message(answer, model="m", message_id="msg_1")
    body = {"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": msg["content"]}]}
    canonical = normalise("GenerateContentRequest", messages_to_gemini(body))
    assert canonical["contents"][1]["parts"] == parts


def _chunks(parts: list[dict[str, Any]], cuts: list[int]) -> list[dict[str, Any]]:
    bounds = sorted({c % (len(parts) + 1) for c in cuts} | {0, len(parts)})
    chunks = [{"candidates": [{"content": {"role": "model", "parts": parts[a:b]}, "index": 0}]}
              for a, b in itertools.pairwise(bounds)]
    chunks[-1]["candidates"][0]["finishReason"] = "STOP"
    chunks[-1]["usageMetadata"] = {"promptTokenCount": 9, "candidatesTokenCount": 4, "totalTokenCount": 13}
    return chunks


@SETTINGS
@given(gemini_parts(), st.lists(st.integers(0, 10), max_size=4))
def test_stream_says_what_the_answer_says(parts: list[dict[str, Any]], cuts: list[int]) -> None:
    """The events of a streamed answer, accumulated as the anthropic SDK does, make the
    message a unary call gets."""
    chunks = _chunks(parts, cuts)
    encoder = MessageStreamEncoder("m", "msg_1")
    events = [e for c in chunks for e in encoder.feed(c)] + encoder.finish()
    snapshot = None
    bufs: dict[int, bytes] = {}
    for _name, data in events:
        if data["type"] == "ping":
            continue
        event = construct_type(type_=atypes.RawMessageStreamEvent, value=data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)  # type: ignore[arg-type]
    assert snapshot is not None
    merged = {"candidates": [{"content": {"parts": parts}, "finishReason": "STOP"}],
              "usageMetadata": chunks[-1]["usageMetadata"]}
    expected = gemini_to_message(merged, model="m", message_id="msg_1")
    got = snapshot.model_dump(exclude_none=True)
    assert got["content"] == expected["content"]
    assert got["stop_reason"] == expected["stop_reason"] and got["usage"]["output_tokens"] == 4


anthropic_blocks = st.lists(
    st.one_of(thinking, text_block, st.builds(lambda i, a: {"type": "tool_use", "id": f"toolu_{i}", "name": "f",
                                                            "input": a}, st.integers(0, 99), args)),
    min_size=1, max_size=5,
)


def _fold(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stream parts joined back into blocks' parts (text pieces, thought pieces and the
    thought's closing signature)."""
    parts: list[dict[str, Any]] = []
    for chunk in chunks:
        for part in chunk["candidates"][0]["content"]["parts"]:
            prev = parts[-1] if parts else None
            same = prev is not None and "functionCall" not in prev and "functionCall" not in part
            if same and prev.get("thought") == part.get("thought") and "thoughtSignature" not in prev:  # type: ignore[union-attr]
                prev["text"] += part["text"]  # type: ignore[index]
                if "thoughtSignature" in part:
                    prev["thoughtSignature"] = part["thoughtSignature"]  # type: ignore[index]
            else:
                parts.append(dict(part))
    return parts


@SETTINGS
@given(anthropic_blocks)
def test_anthropic_stream_decodes_to_the_answer(blocks: list[dict[str, Any]]) -> None:
    """An Anthropic upstream's events, decoded, say what its complete answer says."""
    message = {"id": "msg_x", "type": "message", "role": "assistant", "model": "m", "content": blocks,
               "stop_reason": "end_turn", "stop_sequence": None,
               "usage": {"input_tokens": 5, "output_tokens": 6, "cache_read_input_tokens": 2}}
    decoder = MessageStreamDecoder()
    chunks = []
    for frame in _events(message):
        data_line = frame.decode().split("\n")[1]
        chunks.extend(decoder.feed(json.loads(data_line.removeprefix("data: "))))
    whole = message_to_gemini(message)
    assert _fold(chunks) == _fold([whole])
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"] == whole["usageMetadata"]


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.text(max_size=5), b64),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=8,
)
BLOCK_TYPES = ["text", "image", "document", "tool_use", "tool_result", "thinking", "redacted_thinking",
               "search_result", "server_tool_use", None, 3]
block_fields = st.fixed_dictionaries(
    {"type": st.sampled_from(BLOCK_TYPES)},
    optional={k: json_values for k in ("text", "source", "id", "name", "input", "tool_use_id", "content",
                                       "is_error", "thinking", "signature")},
)
message_values = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "bot", None])},
    optional={"content": st.one_of(st.text(max_size=5), st.lists(block_fields, max_size=3), json_values)},
)
bodies = st.fixed_dictionaries(
    {"model": st.one_of(st.just("m"), json_values), "messages": st.one_of(st.lists(message_values, max_size=3), json_values)},
    optional={k: json_values for k in ("max_tokens", "system", "tools", "tool_choice", "thinking",
                                       "stop_sequences", "temperature", "top_k", "output_config", "stream")},
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, st.booleans())
def test_bad_input_is_always_a_named_error(body: dict[str, Any], count_only: bool) -> None:
    """Whatever a client sends, the door's translation either succeeds or says which field
    is wrong: never another exception (which a client would see as a 500)."""
    try:
        try:
            request = messages_to_gemini(body, count_only=count_only)
        except Untranslatable:
            request = messages_to_gemini(body, count_only=count_only, lenient=True)
        check_generate(normalise("GenerateContentRequest", request))
    except InvalidArgument as exc:
        assert exc.message
