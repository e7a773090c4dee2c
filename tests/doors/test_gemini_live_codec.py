"""The Live door's codec and the ephemeral tokens' setup locks, as pure functions."""

from __future__ import annotations

import json

import pytest

from gemgate.doors import gemini_live as codec
from gemgate.errors import ApiKeyInvalid, BudgetExhausted, InvalidArgument, LiveRefused, NotFound
from gemgate.pipeline.live_tokens import constrain
from gemgate.store.live_tokens import LiveToken


def token(setup: dict | None, mask: str | None) -> LiveToken:
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    return LiveToken(1, now, now, 1, json.dumps(setup) if setup is not None else None, mask)


def test_frames_are_strict_json_with_one_message() -> None:
    with pytest.raises(InvalidArgument, match="Unknown name"):
        codec.parse_frame('{"setup": {}, "bogus": 1}')
    with pytest.raises(InvalidArgument, match="exactly one"):
        codec.parse_frame('{"setup": {}, "clientContent": {}}')
    with pytest.raises(InvalidArgument, match="Invalid JSON"):
        codec.parse_frame(b"{nope")
    with pytest.raises(InvalidArgument):
        codec.parse_frame('{"setup": {"model": "a", "model": "b"}}')  # a key given twice
    assert codec.message_kind(codec.parse_frame('{"client_content": {}}')) == "clientContent"


def test_setup_and_turns() -> None:
    setup = codec.read_setup({"setup": {"model": "models/m", "generation_config": {
        "response_modalities": ["AUDIO"], "speech_config": {"voice_config": {}}, "temperature": 1}}})
    assert setup.model == "m"
    assert json.loads(setup.frame("up"))["setup"]["model"] == "models/up"
    setup = codec.canonical_setup(setup)
    assert setup.modalities == ("AUDIO",) and setup.generation == {"temperature": 1}
    assert setup.audio_options == ("speech_config",)
    with pytest.raises(InvalidArgument, match="model is not specified"):
        codec.read_setup({"setup": {}})
    with pytest.raises(InvalidArgument, match='Unknown name "nope"'):
        codec.canonical_setup(codec.read_setup({"setup": {"model": "m", "nope": 1}}))
    turn = codec.read_turn({"realtimeInput": {"audio": {"data": "AAAA", "mimeType": "audio/pcm;rate=16000"}}})
    assert turn.media == ["audio/pcm;rate=16000"] and not turn.complete
    turn = codec.read_turn({"realtime_input": {"text": "hi"}})
    assert turn.complete and turn.contents == [{"role": "user", "parts": [{"text": "hi"}]}]


def test_usage_naming() -> None:
    live = {"promptTokenCount": 5, "responseTokenCount": 2, "responseTokensDetails": [{"modality": "TEXT", "tokenCount": 2}]}
    canonical = codec.canonical_usage(live)
    assert canonical["candidatesTokenCount"] == 2 and "responseTokenCount" not in canonical
    assert codec.live_usage(canonical) == live
    assert codec.canonical_usage({"response_token_count": 3}) == {"candidatesTokenCount": 3}


def test_close_frames() -> None:
    assert codec.close_for(ApiKeyInvalid())[0] == 1008
    assert codec.close_for(NotFound("x"))[0] == 1008
    assert codec.close_for(InvalidArgument("x"))[0] == 1007
    assert codec.close_for(BudgetExhausted("x"))[0] == 1011
    assert codec.close_for(LiveRefused(1007, "as it came")) == (1007, "as it came")
    reason = codec.close_for(InvalidArgument("é" * 200))[1]
    assert len(reason.encode()) <= codec.MAX_REASON_BYTES and reason.endswith("...")


def test_credentials() -> None:
    assert codec.ephemeral_token({"authorization": "Token auth_tokens/abc"}, {}) == "auth_tokens/abc"
    assert codec.ephemeral_token({}, {"access_token": "auth_tokens/q"}) == "auth_tokens/q"
    assert codec.ephemeral_token({"authorization": "Bearer x"}, {}) is None


def test_locked_setups() -> None:
    client = {"model": "models/a", "generation_config": {"temperature": 1, "top_k": 3},
              "systemInstruction": {"parts": [{"text": "mine"}]}}
    locked = {"model": "models/b", "generationConfig": {"temperature": 0.2}}
    assert constrain(client, token(None, None)) is client
    assert constrain(client, token(locked, None)) == locked  # the whole setup
    assert constrain(client, token({"generationConfig": {"temperature": 0.2}}, None))["model"] == "models/a"
    merged = constrain(client, token(locked, "model,generationConfig.temperature,generationConfig.top_k"))
    assert merged["model"] == "models/b"
    assert merged["generationConfig"] == {"temperature": 0.2}  # top_k locked, and unset
    assert merged["systemInstruction"] == {"parts": [{"text": "mine"}]}
