"""The Responses translation without a server: a Gemini model turn rendered as output items
and replayed as input items comes back as the same parts, thought signatures in place,
whether the answer arrived whole or in chunks; and what is malformed is refused naming
the field."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemgate.errors import InvalidArgument
from gemgate.translate.responses_items import InputReader, seal, unseal
from gemgate.translate.responses_output import OutputBuilder
from gemgate.translate.responses_request import check_top_level, read_request
from gemgate.translate.responses_tools import read_tools, tool_config

signatures = st.binary(min_size=1, max_size=12).map(lambda b: base64.b64encode(b).decode())
words = st.text(alphabet="abc xyz", min_size=1, max_size=8)


def _part(kind: str, text: str, sig: str | None, n: int) -> dict[str, Any]:
    if kind == "call":
        part: dict[str, Any] = {"functionCall": {"id": f"call_{n}", "name": "f", "args": {"n": n}}}
    else:
        part = {"text": text, **({"thought": True} if kind == "thought" else {})}
    if sig is not None:
        part["thoughtSignature"] = sig
    return part


parts_lists = st.lists(
    st.tuples(st.sampled_from(["thought", "text", "call"]), words, st.none() | signatures),
    min_size=1, max_size=8,
).map(lambda specs: [_part(k, t, s, n) for n, (k, t, s) in enumerate(specs)])


def merged(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Gemini's parts as a reader takes them: a run of thought text (ended by its
    signature) is one thought, a run of text (begun by a signed part) one text part."""
    out: list[dict[str, Any]] = []
    run: str | None = None  # the kind of the run the last part belongs to
    for part in parts:
        sig = part.get("thoughtSignature")
        if "functionCall" in part:
            out.append(part)
            run = None
        elif part.get("thought"):
            if run == "thought":
                out[-1]["text"] += part["text"]
            else:
                out.append({"text": part["text"], "thought": True})
                run = "thought"
            if sig is not None:
                out[-1]["thoughtSignature"] = sig
                run = None
        elif sig is not None or run != "text":
            out.append(dict(part))
            run = "text"
        else:
            out[-1]["text"] += part["text"]
    return out


def replayed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    reader = InputReader()
    reader.read(items)
    contents = reader.finish()
    assert [c["role"] for c in contents] == ["model"]
    parts: list[dict[str, Any]] = contents[0]["parts"]
    return parts


@settings(max_examples=200, deadline=None)
@given(parts_lists, st.integers(min_value=1, max_value=4))
def test_model_turn_round_trips(parts: list[dict[str, Any]], pieces: int) -> None:
    whole = OutputBuilder()
    whole.feed({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]})
    whole.close()
    streamed = OutputBuilder()
    size = max(1, len(parts) // pieces)
    for start in range(0, len(parts), size):
        streamed.feed({"candidates": [{"content": {"role": "model", "parts": parts[start:start + size]}}]})
    streamed.close()
    expected = merged(parts)
    assert replayed(whole.items) == expected
    assert replayed(streamed.items) == expected


def test_sealing() -> None:
    assert unseal(seal("c2ln", "next")) == ("next", "c2ln")
    assert unseal("gAAAAB-openai-encrypted") is None  # another provider's: nothing for Gemini
    assert unseal("gemgate:v1:next:not base64!") is None


def test_refusals_name_the_field() -> None:
    with pytest.raises(InvalidArgument, match=r"input\[1\]\.call_id"):
        read_request({"model": "m", "input": [{"role": "user", "content": "hi"},
                                               {"type": "function_call_output", "call_id": "x", "output": "y"}]})
    with pytest.raises(InvalidArgument, match=r"input\[0\]\.content\[0\]\.type"):
        read_request({"model": "m", "input": [{"role": "user", "content": [{"type": "input_video"}]}]})
    with pytest.raises(InvalidArgument, match="item references"):
        read_request({"model": "m", "input": [{"type": "item_reference", "id": "msg_1"}]})
    with pytest.raises(InvalidArgument, match="metadata"):
        check_top_level({"model": "m", "metadata": {"k": 1}})
    with pytest.raises(InvalidArgument, match=r"tool_choice\.name"):
        tool_config({"type": "function", "name": "nope"}, {"f"}, [])


def test_new_item_types_and_tools_are_left_out_with_a_warning() -> None:
    translated = read_request({"model": "m", "input": [
        {"role": "user", "content": "hi"},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        {"type": "some_future_item", "id": "x_1"},
    ]})
    assert translated.request["contents"] == [{"role": "user", "parts": [{"text": "hi"}]}]
    assert translated.warnings == ["input[2]: an item of type 'some_future_item' was left out"]
    warnings: list[str] = []
    declared = read_tools([{"type": "local_shell"}, {"type": "shell_v9"}], warnings)
    assert declared.tools == [] and declared.declared == set()
    assert len(warnings) == 2
