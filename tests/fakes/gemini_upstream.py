"""A fake of Google's ``generativelanguage`` REST API, used as the gateway's upstream in tests.

It is a real aiohttp HTTP server running on its own event loop in a background thread, so the
gateway's real HTTP client talks to it exactly as it would talk to Google. Usage::

    with FakeGemini() as fake:
        fake.script("gemini-2.5-flash", stream=[chunk1, chunk2], event_delay=0.05)
        ...  # point the gateway at fake.base_url with fake.api_key

Without a script, ``generateContent`` answers ``"echo: " + <last user text>`` with one
"token" per whitespace-separated word (see ``FakeGemini.script`` for the scripting API).
Like Google, a ``gemini-3*`` model refuses a step whose functionCall lost the thought
signature the fake handed out with it (:func:`signature_refusal`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import re
import secrets
import socket
import struct
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from tests.fakes.gemini_interactions import GeminiInteractionsFake
from tests.fakes.gemini_resources import GeminiResourcesFake

JSON = dict[str, Any]

STATUS_NAMES = {
    400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
    409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED",
    500: "INTERNAL", 501: "NOT_IMPLEMENTED", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED",
}
DEFAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
    "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_GEN = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]
_EMB = ["embedContent"]
_SAMPLING = {"temperature": 1.0, "topP": 0.95, "topK": 64, "maxTemperature": 2.0}


def model_info(model_id: str, display: str, version: str = "001", limits: tuple[int, int] = (
        1048576, 65536), methods: list[str] = _GEN, **extra: Any) -> JSON:
    """One entry of ListModels, in Google's shape (embedding models carry no sampling fields)."""
    return {"name": f"models/{model_id}", "baseModelId": model_id.rsplit("/", 1)[-1],
            "version": version, "displayName": display, "description": f"{display} (fake)",
            "inputTokenLimit": limits[0], "outputTokenLimit": limits[1],
            "supportedGenerationMethods": list(methods),
            **({} if methods == _EMB else _SAMPLING), **extra}


MODELS: list[JSON] = [
    model_info("gemini-2.5-flash", "Gemini 2.5 Flash", thinking=True),
    model_info("gemini-2.5-pro", "Gemini 2.5 Pro", "2.5", thinking=True),
    model_info("gemini-2.5-flash-image", "Nano Banana", "2.0", (32768, 32768),
               ["generateContent", "countTokens", "batchGenerateContent"]),
    model_info("text-embedding-004", "Text Embedding 004", "004", (2048, 1), _EMB),
    model_info("gemini-embedding-001", "Gemini Embedding 001", "001", (2048, 1), _EMB),
]
# Which supportedGenerationMethods entry each RPC needs.
RPCS = {"generateContent": "generateContent", "streamGenerateContent": "generateContent",
        "countTokens": "countTokens", "embedContent": "embedContent",
        "batchEmbedContents": "embedContent"}
# Known top-level request fields per RPC (proto3 JSON: snake_case accepted too).
FIELDS = {
    "generateContent": {"model", "contents", "systemInstruction", "tools", "toolConfig",
                        "safetySettings", "generationConfig", "cachedContent", "serviceTier",
                        "store", "continuationToken"},
    "countTokens": {"contents", "generateContentRequest"},
    "embedContent": {"model", "content", "taskType", "title", "outputDimensionality"},
    "batchEmbedContents": {"requests"},
}
FIELDS["streamGenerateContent"] = FIELDS["generateContent"]
IMAGE_TOKENS = 1290
# A 1x1 transparent PNG, the default "generated image".
PNG_1X1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAA"
           "AABJRU5ErkJggg==")
_PATH = re.compile(r"/(v1beta|v1)/models(?:/(.+))?")


def error_body(code: int, message: str | None = None, details: list[JSON] | None = None) -> JSON:
    """Google's error envelope."""
    err: JSON = {"code": code, "message": message or DEFAULT_MESSAGES.get(code, "Error"),
                 "status": STATUS_NAMES.get(code, "UNKNOWN")}
    if details:
        err["details"] = details
    return {"error": err}


def _json_error(code: int, message: str | None = None, details: list[JSON] | None = None,
                headers: dict[str, str] | None = None) -> web.Response:
    return _json_response(error_body(code, message, details), code, headers)


def _json_response(obj: Any, status: int = 200,
                   headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(obj, indent=2, ensure_ascii=False).encode()
    hdrs = {"Content-Type": "application/json; charset=UTF-8", **(headers or {})}
    return web.Response(body=body, status=status, headers=hdrs)


def _error_info(reason: str) -> JSON:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
            "domain": "googleapis.com",
            "metadata": {"service": "generativelanguage.googleapis.com"}}


def _bad_request(message: str) -> web.Response:
    details = [{"@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"description": message}]}]
    return _json_error(400, message, details)


def _get(obj: JSON, camel: str) -> Any:
    """Read a proto3 JSON field given in lowerCamelCase or snake_case."""
    if camel in obj:
        return obj[camel]
    return obj.get(re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), camel))


def _camel(name: str) -> str:
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name)


def _texts(content: Any) -> list[str]:
    parts = content.get("parts") if isinstance(content, dict) else None
    if isinstance(parts, dict):
        parts = [parts]
    return [p["text"] for p in parts or [] if isinstance(p, dict) and "text" in p]


def _prompt_tokens(req: JSON) -> int:
    texts = [t for c in _get(req, "contents") or [] for t in _texts(c)]
    texts += _texts(_get(req, "systemInstruction"))
    return max(1, sum(len(t.split()) for t in texts))


def _embedding(text: str, dims: int = 8) -> list[float]:
    raw = hashlib.shake_256(text.encode()).digest(4 * dims)
    return [round(v / 0xFFFFFFFF * 2 - 1, 6) for v in struct.unpack(f"<{dims}I", raw)]


def _usage(prompt: int, text_tokens: int, image_tokens: int = 0) -> JSON:
    cand = [{"modality": "TEXT", "tokenCount": text_tokens}] if text_tokens else []
    if image_tokens:
        cand.append({"modality": "IMAGE", "tokenCount": image_tokens})
    total = text_tokens + image_tokens
    return {"promptTokenCount": prompt, "candidatesTokenCount": total,
            "totalTokenCount": prompt + total,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
            "candidatesTokensDetails": cand}


def _plain(part: JSON) -> bool:
    return "text" in part and set(part) <= {"text", "thought"}


def merge_stream(events: list[JSON]) -> JSON:
    """Fold stream chunks into the single response generateContent would have returned."""
    out: JSON = {}
    parts: list[JSON] = []
    cand: JSON = {}
    for ev in events:
        for key, value in ev.items():
            if key != "candidates" and (key not in out or key == "usageMetadata"):
                out[key] = value
        for c in ev.get("candidates") or []:
            cand.update({k: v for k, v in c.items() if k != "content"})
            for p in (c.get("content") or {}).get("parts") or []:
                prev = parts[-1] if parts else {}
                if _plain(p) and _plain(prev) and p.get("thought") == prev.get("thought"):
                    parts[-1] = {**prev, "text": prev["text"] + p["text"]}
                else:
                    parts.append(dict(p))
    if cand or parts:
        out = {"candidates": [{"content": {"parts": parts, "role": "model"}, **cand}], **out}
    return out


def _signature_bytes(value: Any) -> bytes | None:
    """A thoughtSignature's bytes (proto3 JSON bytes: standard or URL-safe base64)."""
    if not isinstance(value, str) or not value:
        return None
    data = value.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except ValueError:
        return None


def _signatures_in(obj: Any) -> set[bytes]:
    """Every thoughtSignature an answer (or a list of stream events) hands out."""
    found: set[bytes] = set()
    for event in obj if isinstance(obj, list) else [obj]:
        for cand in (event or {}).get("candidates") or ():
            for part in (cand.get("content") or {}).get("parts") or ():
                sig = _signature_bytes(part.get("thoughtSignature"))
                if sig is not None:
                    found.add(sig)
    return found


def signature_refusal(req: JSON, issued: set[bytes]) -> web.Response | None:
    """Google's thought-signature check for Gemini 3 models: in the current turn (the
    contents after the last user content that is more than function responses), the first
    functionCall part of each model step must carry the signature it came with."""
    contents = [c for c in _get(req, "contents") or () if isinstance(c, dict)]
    start = 0
    for i, content in enumerate(contents):
        parts = [p for p in content.get("parts") or () if isinstance(p, dict)]
        if content.get("role", "user") in ("user", "") and any(
                _get(p, "functionResponse") is None for p in parts):
            start = i + 1
    position = 0
    for content in contents[start:]:
        if content.get("role") != "model":
            continue
        calls = [p for p in content.get("parts") or () if isinstance(p, dict) and _get(p, "functionCall")]
        for k, call in enumerate(calls):
            position += 1
            if k:
                continue
            sig = _get(call, "thoughtSignature")
            if sig is None:
                name = (_get(call, "functionCall") or {}).get("name")
                return _json_error(400, "Function call is missing a thought_signature in functionCall "
                                   "parts. This is required for tools to work correctly, and missing "
                                   "thought_signature may lead to degraded model performance. "
                                   f"Additional data, function call `default_api:{name}` , position "
                                   f"{position}. Please refer to https://ai.google.dev/gemini-api/docs/"
                                   "thought-signatures for more details.")
            if _signature_bytes(sig) not in issued:
                return _json_error(400, "Corrupted thought signature.")
    return None


@dataclass
class RecordedRequest:
    method: str
    path: str  # percent-decoded
    query: dict[str, str]
    headers: dict[str, str]  # lowercased names
    body: bytes
    json: Any = None
    raw_path: str = ""
    model: str | None = None
    rpc: str | None = None


@dataclass
class _Script:
    method: str | None
    reply: JSON | None = None
    stream: list[JSON] | None = None
    status: int = 200
    error: JSON | None = None
    delay: float = 0.0
    event_delay: float = 0.0
    cut_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)


class StreamGate:
    """Holds a stream after ``first_events`` events until ``release()`` is called."""

    def __init__(self, first_events: int) -> None:
        self.first_events = first_events
        self.reached = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    @property
    def released(self) -> bool:
        return self._released.is_set()


class FakeGemini(GeminiResourcesFake, GeminiInteractionsFake):
    def __init__(self, api_key: str = "upstream-secret-key", *more_keys: str) -> None:
        """``api_key`` and ``more_keys`` are the keys this fake project accepts."""
        self.api_key = api_key
        self.api_keys = frozenset({api_key, *more_keys})
        self._cond = threading.Condition()
        self._models: dict[str, JSON] = {}
        self._scripts: dict[str, deque[_Script]] = {}
        self._gates: dict[str, deque[StreamGate]] = {}
        self._requests: list[RecordedRequest] = []
        self._signatures: set[bytes] = set()  # every thoughtSignature handed out
        self._disconnects = 0
        self._delay = 0.0
        self._port = 0
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeGemini:
        if self._thread is not None:
            return self
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                         shutdown_timeout=1.0)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(serve())
            except BaseException as exc:  # surfaced in start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._stopping = False
        self._thread = threading.Thread(target=run, name="fake-gemini", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self._stopping = True
        self._release_gates()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = self._loop = self._runner = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # -- scripting (thread-safe) -------------------------------------------------------------
    def script(self, model: str, reply: JSON | None = None, *, stream: list[JSON] | None = None,
               status: int = 200, error: JSON | None = None, delay: float = 0.0,
               event_delay: float = 0.0, cut_after: int | None = None,
               headers: dict[str, str] | None = None, method: str | None = None) -> None:
        """Queue the answer to the next call to ``model`` (FIFO, default answer when empty).

        ``method`` None matches generateContent/streamGenerateContent; otherwise the exact RPC
        (e.g. "countTokens"). A non-stream call fed a ``stream`` script gets the merged chunks;
        a stream call fed a ``reply`` gets it as one event. ``status`` != 200 (or ``error``)
        answers Google's envelope; ``cut_after`` aborts the connection after N stream events
        (a non-stream call is aborted before any byte).
        """
        model = model.removeprefix("models/")
        with self._cond:
            if model not in self._models:
                raise ValueError(f"unknown model {model!r}; register it with add_model() first")
            if error is not None and status == 200:
                status = int(error.get("code", 500))
            self._scripts.setdefault(model, deque()).append(_Script(
                method, reply, stream, status, error, delay, event_delay, cut_after,
                dict(headers or {})))

    def hold_stream(self, model: str, first_events: int = 1) -> StreamGate:
        """Make the next stream to ``model`` pause after ``first_events`` events until
        ``gate.release()``; ``gate.reached`` is set as the last of those events is written."""
        gate = StreamGate(first_events)
        with self._cond:
            self._gates.setdefault(model.removeprefix("models/"), deque()).append(gate)
        return gate

    def set_delay(self, seconds: float) -> None:
        self._delay = seconds

    def add_model(self, model_id: str, **fields: Any) -> JSON:
        """Register a model (its id may contain '/'); ``fields`` override the defaults."""
        model_id = model_id.removeprefix("models/")
        info = {**model_info(model_id, model_id.rsplit("/", 1)[-1]), **fields}
        with self._cond:
            self._models[model_id] = info
        return info

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._cond:
            return list(self._requests)

    @property
    def disconnects(self) -> int:
        """Model calls whose client went away before the answer ended (mid-stream, or during a
        scripted delay). Server-side aborts (``cut_after``) are not counted."""
        return self._disconnects

    def wait_disconnects(self, count: int = 1, timeout: float = 5.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._disconnects >= count, timeout)

    def clear(self) -> None:
        """Forget recorded requests and the disconnect count."""
        with self._cond:
            self._requests.clear()
            self._disconnects = 0

    def reset(self) -> None:
        """clear() plus drop scripts, gates, the global delay and models added by add_model."""
        with self._cond:
            self.clear()
            self._release_gates()
            self._scripts.clear()
            self._gates.clear()
            self._delay = 0.0
            self._models = {m["name"].removeprefix("models/"): dict(m) for m in MODELS}
            self._signatures.clear()
            self._reset_resources()
            self._reset_interactions()

    def _release_gates(self) -> None:
        with self._cond:
            for gates in self._gates.values():
                for gate in gates:
                    gate.release()

    # -- server side -------------------------------------------------------------------------
    def _take_script(self, model: str, rpc: str) -> _Script:
        with self._cond:
            queue = self._scripts.get(model) or deque()
            script = next((s for s in queue if s.method == rpc or (
                s.method is None and rpc in ("generateContent", "streamGenerateContent"))), None)
            if script is not None:
                queue.remove(script)
            return script or _Script(None)

    def _take_gate(self, model: str) -> StreamGate | None:
        with self._cond:
            gates = self._gates.get(model)
            return gates.popleft() if gates else None

    def _note_disconnect(self) -> None:
        if not self._stopping:
            with self._cond:
                self._disconnects += 1
                self._cond.notify_all()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        raw_path = request.rel_url.raw_path
        path = unquote(raw_path)
        match = _PATH.fullmatch(path)
        rest = match.group(2) if match else None
        model, rpc = rest.rsplit(":", 1) if rest and ":" in rest else (rest, None)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        with self._cond:
            self._requests.append(RecordedRequest(
                request.method, path, dict(request.query.items()),
                {k.lower(): v for k, v in request.headers.items()}, body, parsed, raw_path,
                model, rpc))
        try:
            if self._delay:
                await asyncio.sleep(self._delay)
            resource = await self._resource_route(request, path, body)
            if resource is not None:
                return resource
            interactions = await self._interactions_route(request, path, body)
            if interactions is not None:
                return interactions
            if match is None or ".." in path.split("/"):
                return _json_error(404, f"The requested URL {path} was not found on this server.")
            denied = self._check_auth(request)
            if denied is not None:
                return denied
            version = match.group(1)
            if request.method == "GET" and rpc is None:
                return self._get_models(version, model, request)
            if request.method != "POST" or model is None or rpc is None:
                return _json_error(404, f"The requested URL {path} was not found on this server.")
            return await self._rpc(request, version, model, rpc, body)
        except asyncio.CancelledError:
            if rpc is not None:
                self._note_disconnect()
            raise

    def _check_auth(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key and request.headers.get("authorization"):  # Google wants OAuth there, not keys
            return _json_error(401, "Request had invalid authentication credentials. Expected "
                               "OAuth 2 access token, login cookie or other valid authentication "
                               "credential.", [_error_info("ACCESS_TOKEN_TYPE_UNSUPPORTED")])
        if not key:
            return _json_error(403, "Method doesn't allow unregistered callers (callers without "
                               "established identity). Please use API Key or other form of API "
                               "consumer identity to call this API.")
        if key not in self.api_keys:
            msg = "API key not valid. Please pass a valid API key."
            return _json_error(400, msg, [_error_info("API_KEY_INVALID"), {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                "message": msg}])
        return None

    def _get_models(self, version: str, model: str | None, request: web.Request) -> web.Response:
        with self._cond:
            models = list(self._models.values())
        if model is not None:
            info = next((m for m in models if m["name"] == f"models/{model}"), None)
            if info is None:
                return _json_error(404, f"models/{model} is not found for API version {version}.")
            return _json_response(info)
        try:
            size = int(request.query.get("pageSize") or 50)
            token = request.query.get("pageToken")
            start = int(base64.urlsafe_b64decode(token.encode()).decode()) if token else 0
            if size < 0 or start < 0:
                raise ValueError
        except ValueError:
            return _bad_request("Invalid pageSize or pageToken.")
        size = min(size or 50, 1000)
        out: JSON = {"models": models[start:start + size]}
        if start + size < len(models):
            out["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode()
        return _json_response(out)

    async def _rpc(self, request: web.Request, version: str, model: str, rpc: str,
                   body: bytes) -> web.StreamResponse:
        try:
            req = json.loads(body) if body.strip() else {}
        except ValueError:
            return _bad_request("Invalid JSON payload received. Unexpected token.")
        if not isinstance(req, dict):
            return _bad_request('Invalid JSON payload received. Unknown name "": Root element '
                                "must be a message.")
        with self._cond:
            info = self._models.get(model)
        if rpc not in RPCS or info is None or RPCS[rpc] not in info["supportedGenerationMethods"]:
            return _json_error(404, f"models/{model} is not found for API version {version}, or "
                               f"is not supported for {rpc}. Call ListModels to see the list of "
                               "available models and their supported methods.")
        for key in req:
            if _camel(key) not in FIELDS[rpc]:
                return _bad_request(f'Invalid JSON payload received. Unknown name "{key}": '
                                    "Cannot find field.")
        if rpc in ("generateContent", "streamGenerateContent"):
            invalid = self._validate_generate(req)
            if invalid is None and model.rsplit("/", 1)[-1].startswith("gemini-3"):
                with self._cond:
                    invalid = signature_refusal(req, set(self._signatures))
            if invalid is not None:
                return invalid
        if rpc in ("generateContent", "streamGenerateContent", "countTokens"):
            inner = _get(req, "generateContentRequest")
            resolved = self._resolve_refs(inner if isinstance(inner, dict) else req, model)
            if isinstance(resolved, web.Response):
                return resolved
            req = {**req, "generateContentRequest": resolved} if isinstance(inner, dict) else resolved
        s = self._take_script(model, rpc)
        with self._cond:
            self._signatures |= _signatures_in(s.stream if s.stream is not None else s.reply)
        if s.delay:
            await asyncio.sleep(s.delay)
        sse = request.query.get("alt") == "sse"
        streaming = rpc == "streamGenerateContent"
        if s.status != 200:
            err = error_body(s.status)
            err["error"].update(s.error or {})
            return _json_response([err] if streaming and not sse else err, s.status, s.headers)
        if s.cut_after is not None and not streaming:
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        if streaming:
            events = s.stream if s.stream is not None else [s.reply] if s.reply is not None else (
                self._default_events(model, req))
            return await self._stream(request, events, sse, s, self._take_gate(model))
        if s.reply is not None or s.stream is not None:
            return _json_response(s.reply if s.reply is not None else merge_stream(s.stream or []),
                                  headers=s.headers)
        return self._default_answer(model, rpc, req)

    def _validate_generate(self, req: JSON) -> web.Response | None:
        contents = _get(req, "contents")
        if not contents:
            return _json_error(400, "* GenerateContentRequest.contents: contents is not "
                               "specified\n")
        for content in contents:
            if not isinstance(content, dict):
                return _bad_request("Invalid JSON payload received. Invalid value at 'contents'.")
            if content.get("role", "user") not in ("user", "model", ""):
                return _json_error(400, "Please use a valid role: user, model.")
        return None

    def _default_answer(self, model: str, rpc: str, req: JSON) -> web.Response:
        if rpc == "generateContent":
            return _json_response(merge_stream(self._default_events(model, req)))
        if rpc == "countTokens":
            inner = _get(req, "generateContentRequest")
            n = _prompt_tokens(inner if isinstance(inner, dict) else req)
            return _json_response({"totalTokens": n,
                                   "promptTokensDetails": [{"modality": "TEXT", "tokenCount": n}]})
        if rpc == "embedContent":
            dims = int(_get(req, "outputDimensionality") or 8)
            text = "".join(_texts(_get(req, "content")))
            return _json_response({"embedding": {"values": _embedding(text, dims)}})
        embeddings = []
        for i, sub in enumerate(_get(req, "requests") or []):
            got = sub.get("model") if isinstance(sub, dict) else None
            if not isinstance(got, str) or not got.startswith("models/"):
                return _json_error(400, f"* BatchEmbedContentsRequest.requests[{i}].model: "
                                   "unexpected model name format\n")
            if got != f"models/{model}":
                return _json_error(400, f"* BatchEmbedContentsRequest.requests[{i}].model: "
                                   f"model {got} does not match the model in the request URL "
                                   f"(models/{model}).\n")
            dims = int(_get(sub, "outputDimensionality") or 8)
            text = "".join(_texts(_get(sub, "content")))
            embeddings.append({"values": _embedding(text, dims)})
        return _json_response({"embeddings": embeddings})

    def _default_events(self, model: str, req: JSON) -> list[JSON]:
        contents = [c for c in _get(req, "contents") or [] if isinstance(c, dict)]
        last_user = next((c for c in reversed(contents) if c.get("role", "user") == "user"), {})
        config = _get(req, "generationConfig") or {}
        modalities = [str(m).upper() for m in _get(config, "responseModalities") or []]
        words = ("echo: " + "".join(_texts(last_user))).split()
        if modalities == ["IMAGE"]:
            words = []
        finish = "STOP"
        limit = _get(config, "maxOutputTokens")
        if isinstance(limit, int) and 0 < limit < len(words):
            words, finish = words[:limit], "MAX_TOKENS"
        chunks: list[list[JSON]] = [[{"text": w if i == 0 else " " + w}]
                                    for i, w in enumerate(words)]
        if "IMAGE" in modalities and "image" in model:
            image = {"inlineData": {"mimeType": "image/png", "data": PNG_1X1}}
            chunks.append([image])
        chunks = chunks or [[{"text": ""}]]
        prompt, response_id = _prompt_tokens(req), secrets.token_urlsafe(16)
        prompt += int(req.get("_mediaTokens") or 0)
        cached = int(req.get("_cachedTokens") or 0)
        events: list[JSON] = []
        text_tokens = image_tokens = 0
        for i, parts in enumerate(chunks):
            text_tokens += sum(1 for p in parts if p.get("text"))
            image_tokens += IMAGE_TOKENS * sum(1 for p in parts if "inlineData" in p)
            cand: JSON = {"content": {"parts": parts, "role": "model"}, "index": 0}
            if i == len(chunks) - 1:
                cand["finishReason"] = finish
            usage = _usage(prompt, text_tokens, image_tokens)
            if cached:
                usage["cachedContentTokenCount"] = cached
            events.append({"candidates": [cand],
                           "usageMetadata": usage,
                           "modelVersion": model, "responseId": response_id})
        return events

    async def _stream(self, request: web.Request, events: list[JSON], sse: bool, s: _Script,
                      gate: StreamGate | None) -> web.StreamResponse:
        ctype = "text/event-stream" if sse else "application/json; charset=UTF-8"
        resp = web.StreamResponse(headers={"Content-Type": ctype, **s.headers})
        try:
            await resp.prepare(request)
            if gate is not None and gate.first_events <= 0:
                await self._hold(gate)
            for i, event in enumerate(events):
                if i == s.cut_after:
                    break
                if i and s.event_delay:
                    await asyncio.sleep(s.event_delay)
                if sse:
                    frame = b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\r\n\r\n"
                else:
                    frame = (b"[" if i == 0 else b",\r\n") + json.dumps(
                        event, indent=2, ensure_ascii=False).encode()
                held = gate if gate is not None and i + 1 == gate.first_events else None
                if held is not None:  # set before the bytes leave: a reader that saw them sees it
                    held.reached.set()
                await resp.write(frame)
                if held is not None:
                    await self._hold(held)
            if gate is not None and not gate.reached.is_set():
                await self._hold(gate)
            if s.cut_after is not None:
                if request.transport is not None:
                    request.transport.abort()
                return resp
            if not sse:
                await resp.write(b"]" if events else b"[]")
            await resp.write_eof()
        except ConnectionResetError:
            self._note_disconnect()
        return resp

    @staticmethod
    async def _hold(gate: StreamGate) -> None:
        gate.reached.set()
        while not gate.released:
            await asyncio.sleep(0.005)
