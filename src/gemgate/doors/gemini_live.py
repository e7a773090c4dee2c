"""The Gemini Live door: ``BidiGenerateContent`` over WebSocket, as a session codec.

A client opens ``{prefix}/ws/google.ai.generativelanguage.{v}.GenerativeService.
BidiGenerateContent`` (``...Constrained`` with an ephemeral token), sends one ``setup``
frame, is answered ``setupComplete``, then sends ``clientContent``, ``realtimeInput`` and
``toolResponse`` frames and receives ``serverContent``, ``toolCall``, ``usageMetadata``
and ``goAway`` frames. Frames are JSON objects (proto3 JSON: camelCase or snake_case
field names), in text or binary WebSocket messages.

This module parses client frames and renders server frames and refusals; it runs no stage.
Google refuses a session with a close frame whose code says what kind of failure it was
(1007 a bad argument, 1008 a refused key, model or permission, 1011 quota or an internal
failure) and whose reason says what: :func:`close_for` does the same.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gemgate.errors import (
    ApiKeyInvalid,
    GatewayError,
    InvalidArgument,
    LiveRefused,
    NotFound,
    PermissionDenied,
)
from gemgate.types import normalise, parse_json

NAME = "gemini_live"
METHOD = "BidiGenerateContent"
CONSTRAINED = "BidiGenerateContentConstrained"

CLOSE_NORMAL = 1000
CLOSE_INVALID = 1007  # Google: "Request contains an invalid argument." and the like
CLOSE_POLICY = 1008  # Google: bad key, unknown model, permission
CLOSE_INTERNAL = 1011  # Google: quota exceeded, internal error, unavailable
MAX_REASON_BYTES = 123  # what a close frame can carry

# The setup's fields (camelCase, and the snake_case the wire also accepts).
SETUP_FIELDS = (
    "model", "generationConfig", "systemInstruction", "tools", "realtimeInputConfig",
    "sessionResumption", "contextWindowCompression", "inputAudioTranscription",
    "outputAudioTranscription", "proactivity", "safetySettings", "historyConfig",
    "avatarConfig", "labels", "explicitVadSignal",
)
# generationConfig fields only Live has: audio and translation options, which a text
# session ignores.
_LIVE_ONLY_GENERATION = ("enableAffectiveDialog", "translationConfig", "speechConfig")
_CLIENT_MESSAGES = ("setup", "clientContent", "realtimeInput", "toolResponse", "contextUpdate")
_MEDIA_KEYS = ("audio", "video", "mediaChunks")


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name)


def _get(obj: Mapping[str, Any], camel: str) -> Any:
    value = obj.get(camel)
    return obj.get(_snake(camel)) if value is None else value


# --- client frames -------------------------------------------------------------------------


def parse_frame(data: str | bytes) -> dict[str, Any]:
    """One client frame: a JSON object naming exactly one client message."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    frame = parse_json(raw)
    if not isinstance(frame, dict):
        raise InvalidArgument("Invalid JSON payload received. Expected a JSON object.")
    known = [k for k in frame if _camel(k) in _CLIENT_MESSAGES]
    unknown = [k for k in frame if _camel(k) not in _CLIENT_MESSAGES]
    if unknown:
        raise InvalidArgument(
            f'Invalid JSON payload received. Unknown name "{unknown[0]}": Cannot find field.'
        )
    if len(known) != 1:
        raise InvalidArgument("A client frame must hold exactly one message (setup, "
                              "clientContent, realtimeInput or toolResponse).")
    return frame


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def message_kind(frame: Mapping[str, Any]) -> str:
    """Which client message a parsed frame holds (camelCase)."""
    return _camel(next(iter(frame)))


@dataclass(slots=True)
class LiveSetup:
    """The session's setup as the client sent it, and the parts a gateway-run session needs
    in canonical form."""

    model: str  # the public model id (without "models/")
    message: dict[str, Any]  # the setup message exactly as sent (for passthrough)
    generation: dict[str, Any] = field(default_factory=dict)  # canonical generationConfig
    system: dict[str, Any] | None = None  # canonical systemInstruction
    tools: list[Any] = field(default_factory=list)
    modalities: tuple[str, ...] = ("TEXT",)
    audio_options: tuple[str, ...] = ()  # audio-only options the client set

    def frame(self, model_name: str | None = None) -> bytes:
        """The setup frame to send upstream, naming ``models/{model_name}``."""
        message = {k: v for k, v in self.message.items() if k != "model"}
        return orjson.dumps({"setup": {"model": f"models/{model_name or self.model}", **message}})


def model_id(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        raise InvalidArgument.field("setup.model", "the model is not specified")
    name = name.strip()
    return name[len("models/"):] if name.startswith("models/") else name


def read_setup(frame: Mapping[str, Any]) -> LiveSetup:
    """The first frame of a session, which must be ``setup``: its model, and the message as
    sent (a channel speaking Live validates the rest itself)."""
    if message_kind(frame) != "setup":
        raise InvalidArgument("The first frame of a session must be its setup.")
    message = next(iter(frame.values()))
    if not isinstance(message, dict):
        raise InvalidArgument.field("setup", "must be an object")
    return LiveSetup(model=model_id(_get(message, "model")), message=dict(message))


def canonical_setup(setup: LiveSetup) -> LiveSetup:
    """``setup`` with its generation config, system instruction and tools validated and in
    canonical form, for a session the gateway runs itself."""
    message = setup.message
    known = set(SETUP_FIELDS) | {_snake(f) for f in SETUP_FIELDS}
    for key in message:
        if key not in known:
            raise InvalidArgument(
                f'Invalid JSON payload received. Unknown name "{key}" at \'setup\': Cannot find field.'
            )
    config = _get(message, "generationConfig") or {}
    if not isinstance(config, dict):
        raise InvalidArgument.field("setup.generationConfig", "must be an object")
    audio = [k for k in config if _camel(k) in _LIVE_ONLY_GENERATION]
    plain = {k: v for k, v in config.items() if _camel(k) not in _LIVE_ONLY_GENERATION}
    setup.generation = _normalised("GenerationConfig", plain, "setup.generationConfig")
    modalities = setup.generation.pop("responseModalities", None)
    if modalities:
        setup.modalities = tuple(m for m in modalities if m != "MODALITY_UNSPECIFIED") or ("TEXT",)
    system = _get(message, "systemInstruction")
    if system is not None:
        if isinstance(system, str):
            system = {"parts": [{"text": system}]}
        setup.system = _normalised("Content", system, "setup.systemInstruction")
    tools = _get(message, "tools")
    if tools:
        if not isinstance(tools, list):
            raise InvalidArgument.field("setup.tools", "must be a list")
        setup.tools = [_normalised("Tool", t, f"setup.tools[{i}]") for i, t in enumerate(tools)]
    for key in ("inputAudioTranscription", "outputAudioTranscription", "proactivity"):
        if _get(message, key) is not None:
            audio.append(key)
    setup.audio_options = tuple(audio)
    return setup


def _normalised(message: str, value: Any, path: str) -> dict[str, Any]:
    try:
        return normalise(message, value)
    except InvalidArgument as exc:
        # Name the field from the frame's top.
        raise InvalidArgument(f"{exc.message} (in {path})", details=exc.details) from None


@dataclass(slots=True)
class ClientTurn:
    """What a client frame adds to the conversation."""

    kind: str  # "content" | "realtime" | "tool_response" | "context"
    contents: list[dict[str, Any]] = field(default_factory=list)  # canonical Contents
    complete: bool = False  # the client's turn is over: the model should answer
    media: list[str] = field(default_factory=list)  # mime types of audio/video sent
    text: str = ""  # realtime text


def read_turn(frame: Mapping[str, Any]) -> ClientTurn:
    """A frame after the setup, in canonical form (for a session the gateway runs itself)."""
    kind = message_kind(frame)
    message = next(iter(frame.values()))
    if kind == "setup":
        raise InvalidArgument("The session is already set up; a second setup is not allowed.")
    if not isinstance(message, dict):
        raise InvalidArgument.field(kind, "must be an object")
    if kind == "clientContent":
        turns = _get(message, "turns") or []
        if not isinstance(turns, list):
            raise InvalidArgument.field("clientContent.turns", "must be a list")
        contents = [
            _normalised("Content", t, f"clientContent.turns[{i}]") for i, t in enumerate(turns)
        ]
        return ClientTurn("content", contents, bool(_get(message, "turnComplete")))
    if kind == "realtimeInput":
        turn = ClientTurn("realtime")
        for key in _MEDIA_KEYS:
            blobs = _get(message, key)
            if blobs is None:
                continue
            for blob in blobs if isinstance(blobs, list) else [blobs]:
                mime = _get(blob, "mimeType") if isinstance(blob, dict) else None
                turn.media.append(str(mime or key))
        text = _get(message, "text")
        if text is not None:
            if not isinstance(text, str):
                raise InvalidArgument.field("realtimeInput.text", "must be a string")
            turn.text = text
            turn.contents = [{"role": "user", "parts": [{"text": text}]}]
            turn.complete = True
        return turn
    if kind == "toolResponse":
        return ClientTurn("tool_response")
    return ClientTurn("context")


# --- server frames -------------------------------------------------------------------------


def setup_complete() -> bytes:
    return b'{"setupComplete":{}}'


def model_text(text: str) -> bytes:
    return orjson.dumps({"serverContent": {"modelTurn": {"role": "model", "parts": [{"text": text}]}}})


def generation_complete() -> bytes:
    return b'{"serverContent":{"generationComplete":true}}'


def interrupted() -> bytes:
    return b'{"serverContent":{"interrupted":true}}'


def turn_complete(usage: Mapping[str, Any] | None) -> bytes:
    frame: dict[str, Any] = {"serverContent": {"turnComplete": True}}
    if usage is not None:
        frame["usageMetadata"] = live_usage(usage)
    return orjson.dumps(frame)


def go_away(seconds_left: float = 0) -> bytes:
    return orjson.dumps({"goAway": {"timeLeft": f"{max(0, math.ceil(seconds_left))}s"}})


# --- usage ---------------------------------------------------------------------------------

_TO_LIVE = {"candidatesTokenCount": "responseTokenCount",
            "candidatesTokensDetails": "responseTokensDetails"}
_TO_CANONICAL = {v: k for k, v in _TO_LIVE.items()}


def live_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Canonical ``usageMetadata`` (candidates...) in Live's naming (response...)."""
    return {_TO_LIVE.get(k, k): v for k, v in usage.items()}


def canonical_usage(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Live's ``usageMetadata`` (response..., camelCase or snake_case) in canonical naming."""
    out: dict[str, Any] = {}
    for key, value in usage.items():
        camel = _camel(key)
        out[_TO_CANONICAL.get(camel, camel)] = value
    return out


# --- refusals ------------------------------------------------------------------------------


def close_for(err: GatewayError) -> tuple[int, str]:
    """The close frame (code, reason) that tells a client what ``err`` says."""
    if isinstance(err, LiveRefused):
        return err.close_code, reason_text(err.message)
    if isinstance(err, ApiKeyInvalid | PermissionDenied | NotFound):
        code = CLOSE_POLICY
    elif isinstance(err, InvalidArgument):
        code = CLOSE_INVALID
    else:
        code = CLOSE_INTERNAL
    return code, reason_text(err.message)


def reason_text(text: str) -> str:
    """``text`` cut to what a close frame carries (whole UTF-8 characters)."""
    raw = text.encode("utf-8")
    if len(raw) <= MAX_REASON_BYTES:
        return text
    return raw[: MAX_REASON_BYTES - 3].decode("utf-8", "ignore") + "..."


# --- credentials ---------------------------------------------------------------------------


def ephemeral_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """An ephemeral token, from ``Authorization: Token auth_tokens/...`` or
    ``?access_token=``."""
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() == "token" and value.strip():
            return value.strip()
    token = query.get("access_token")
    return token.strip() or None if token is not None else None
