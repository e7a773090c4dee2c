"""A fake of Google Cloud's Vertex AI and of Google's OAuth token endpoint, for tests.

A real aiohttp server on its own event loop in a background thread (like
:class:`tests.fakes.gemini_upstream.FakeGemini`), with two faces:

- ``POST /token``: Google's token endpoint for service accounts. It takes the JWT-bearer
  grant, checks the assertion's RS256 signature against the account's public key (each
  account is a throwaway RSA key made by :meth:`FakeVertex.new_account`), its issuer,
  audience, scope and times, and mints a short-lived access token.
- ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{m}:{rpc}``: Vertex's
  ``generateContent``, ``streamGenerateContent?alt=sse``, ``countTokens`` and ``predict``.
  It checks the bearer token it is given (unknown: 401; expired: 401 with
  ``ACCESS_TOKEN_EXPIRED``), that every content has a role (Vertex requires it) and that the
  body has no field Vertex lacks (``serviceTier``, ``store``). Flex and Priority PayGo come as
  the ``X-Vertex-AI-LLM-Shared-Request-Type`` header and are answered in
  ``usageMetadata.trafficType``.

Scripts and faults (HTTP errors, 429 with RetryInfo, delays, held or cut streams, an error
as a stream's first event, tokens expiring early) apply to the next call, as in FakeGemini.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from tests.fakes.gemini_upstream import (
    StreamGate,
    _embedding,
    _prompt_tokens,
    _texts,
    error_body,
    merge_stream,
)

JSON = dict[str, Any]
CLOUD_PLATFORM = "https://www.googleapis.com/auth/cloud-platform"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_URI = "https://oauth2.googleapis.com/token"
GENERATE_FIELDS = {"contents", "systemInstruction", "tools", "toolConfig", "safetySettings",
                   "generationConfig", "cachedContent", "labels", "modelArmorConfig"}
TRAFFIC = {None: "ON_DEMAND", "flex": "ON_DEMAND_FLEX", "priority": "ON_DEMAND_PRIORITY"}


def _b64(data: str) -> bytes:
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))


def _json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=json.dumps(obj).encode(), status=status,
                        headers={"Content-Type": "application/json; charset=UTF-8", **(headers or {})})


def _error(code: int, message: str, details: list[JSON] | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    body = error_body(code, message, details)
    return _json(body, code, headers)


def _auth_error(reason: str) -> web.Response:
    return _error(401, "Request had invalid authentication credentials. Expected OAuth 2 access "
                  "token, login cookie or other valid authentication credential.",
                  [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason,
                    "domain": "googleapis.com",
                    "metadata": {"service": "aiplatform.googleapis.com"}}])


@dataclass
class Account:
    email: str
    public_key: rsa.RSAPublicKey
    fixed_token: str | None = None  # mint this token every time (conformance wants known ones)
    refused: bool = False


@dataclass
class Token:
    email: str
    expires_at: float


@dataclass
class Call:
    model: str
    rpc: str
    token: str | None
    headers: dict[str, str]
    body: bytes
    json: Any = None


@dataclass
class _Script:
    method: str | None = None
    reply: JSON | None = None
    stream: list[JSON] | None = None
    status: int = 200
    error: JSON | None = None
    delay: float = 0.0
    cut_after: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    gate: StreamGate | None = None


class FakeVertex:
    def __init__(self, project: str = "fake-project", location: str = "us-central1",
                 token_lifetime: float = 3600.0) -> None:
        self.project = project
        self.location = location
        self.token_lifetime = token_lifetime
        self._lock = threading.Condition()
        self._accounts: dict[str, Account] = {}
        self._tokens: dict[str, Token] = {}
        self._scripts: deque[_Script] = deque()
        self.calls: list[Call] = []
        self.mints: list[str] = []  # the account of each token minted
        self.disconnects = 0
        self._port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeVertex:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True,
                                         shutdown_timeout=1.0)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="fake-vertex", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._thread is None or self._loop is None:
            return
        self.reset()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> FakeVertex:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def token_uri(self) -> str:
        return f"{self.base_url}/token"

    # -- accounts and tokens -----------------------------------------------------------------
    def new_account(self, email: str = "gateway@fake-project.iam.gserviceaccount.com",
                    fixed_token: str | None = None) -> str:
        """A throwaway service account this fake trusts; returns its JSON key file's text."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        with self._lock:
            self._accounts[email] = Account(email, key.public_key(), fixed_token)
        return json.dumps({
            "type": "service_account", "project_id": self.project,
            "private_key_id": secrets.token_hex(20), "private_key": pem, "client_email": email,
            "client_id": str(secrets.randbelow(10**20)), "token_uri": self.token_uri,
        })

    def refuse(self, email: str) -> None:
        """The token endpoint answers this account with invalid_grant from now on."""
        with self._lock:
            self._accounts[email].refused = True

    def expire_tokens(self) -> None:
        """Every token minted so far has expired (Vertex answers 401 ACCESS_TOKEN_EXPIRED)."""
        with self._lock:
            for token in self._tokens.values():
                token.expires_at = 0.0

    def tokens_of(self, email: str) -> list[str]:
        with self._lock:
            return [t for t, info in self._tokens.items() if info.email == email]

    # -- scripting ---------------------------------------------------------------------------
    def script(self, reply: JSON | None = None, *, stream: list[JSON] | None = None,
               status: int = 200, error: JSON | None = None, delay: float = 0.0,
               cut_after: int | None = None, headers: dict[str, str] | None = None,
               method: str | None = None) -> None:
        """The next model call (of ``method``; default generate/stream) answers this."""
        with self._lock:
            self._scripts.append(_Script(method, reply, stream, status, error, delay, cut_after,
                                         dict(headers or {})))

    def hold_stream(self, first_events: int = 1, stream: list[JSON] | None = None) -> StreamGate:
        """The next stream (``stream``, or the default answer) pauses after ``first_events``
        events until ``gate.release()``."""
        gate = StreamGate(first_events)
        with self._lock:
            self._scripts.append(_Script(stream=stream, gate=gate))
        return gate

    def reset(self) -> None:
        with self._lock:
            for s in self._scripts:
                if s.gate is not None:
                    s.gate.release()
            self._scripts.clear()
            self.calls.clear()
            self.disconnects = 0

    def wait_disconnects(self, count: int = 1, timeout: float = 5.0) -> bool:
        with self._lock:
            return self._lock.wait_for(lambda: self.disconnects >= count, timeout)

    def _take(self, rpc: str) -> _Script:
        with self._lock:
            for s in self._scripts:
                if s.method == rpc or (s.method is None and rpc in (
                        "generateContent", "streamGenerateContent")):
                    self._scripts.remove(s)
                    return s
        return _Script()

    # -- server side -------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if request.path == "/token" and request.method == "POST":
            return self._mint(body)
        prefix = f"/v1/projects/{self.project}/locations/{self.location}/publishers/google/models/"
        if request.method != "POST" or not request.path.startswith(prefix) or ":" not in request.path:
            return _error(404, f"The requested URL {request.path} was not found on this server.")
        model, rpc = request.path[len(prefix):].rsplit(":", 1)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        try:
            parsed = json.loads(body) if body else {}
        except ValueError:
            parsed = None
        with self._lock:
            self.calls.append(Call(model, rpc, token, {k.lower(): v for k, v in request.headers.items()},
                                   body, parsed))
        try:
            denied = self._check_token(token)
            if denied is not None:
                return denied
            if not isinstance(parsed, dict):
                return _error(400, "Invalid JSON payload received.")
            return await self._rpc(request, model, rpc, parsed)
        except asyncio.CancelledError:
            with self._lock:
                self.disconnects += 1
                self._lock.notify_all()
            raise

    def _mint(self, body: bytes) -> web.Response:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        if form.get("grant_type") != JWT_BEARER or "assertion" not in form:
            return _json({"error": "unsupported_grant_type"}, 400)
        try:
            head_b64, claims_b64, sig_b64 = form["assertion"].split(".")
            header, claims = json.loads(_b64(head_b64)), json.loads(_b64(claims_b64))
        except ValueError:
            return _json({"error": "invalid_grant", "error_description": "Malformed JWT."}, 400)
        with self._lock:
            account = self._accounts.get(claims.get("iss", ""))
        if account is None or header.get("alg") != "RS256":
            return _json({"error": "invalid_grant", "error_description": "Invalid issuer."}, 400)
        try:
            account.public_key.verify(_b64(sig_b64), f"{head_b64}.{claims_b64}".encode(),
                                      padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return _json({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, 400)
        now = time.time()
        # google-auth addresses the assertion to Google's token URI wherever it posts it.
        if (claims.get("aud") not in (self.token_uri, GOOGLE_TOKEN_URI) or CLOUD_PLATFORM not in str(claims.get("scope"))
                or not claims.get("iat", 0) - 60 <= now <= claims.get("exp", 0)):
            return _json({"error": "invalid_grant", "error_description": "Invalid JWT claims."}, 400)
        if account.refused:
            return _json({"error": "invalid_grant",
                          "error_description": "Account disabled; assertion " + form["assertion"][:40]}, 400)
        token = account.fixed_token or "ya29.fake-" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = Token(account.email, now + self.token_lifetime)
            self.mints.append(account.email)
        return _json({"access_token": token, "expires_in": int(self.token_lifetime),
                      "token_type": "Bearer"})

    def _check_token(self, token: str | None) -> web.Response | None:
        if not token:
            return _auth_error("CREDENTIALS_MISSING")
        with self._lock:
            info = self._tokens.get(token)
        if info is None:
            return _auth_error("ACCESS_TOKEN_TYPE_UNSUPPORTED")
        if info.expires_at <= time.time():
            return _auth_error("ACCESS_TOKEN_EXPIRED")
        return None

    async def _rpc(self, request: web.Request, model: str, rpc: str, req: JSON) -> web.StreamResponse:
        if rpc == "predict":
            return self._predict(req)
        if rpc == "countTokens":
            n = _prompt_tokens(req)
            return _json({"totalTokens": n, "totalBillableCharacters": n * 4})
        if rpc not in ("generateContent", "streamGenerateContent"):
            return _error(404, f"Method {rpc} is not found.")
        for key in req:
            if key not in GENERATE_FIELDS:
                return _error(400, f'Invalid JSON payload received. Unknown name "{key}": Cannot find field.')
        for content in req.get("contents") or []:
            if not isinstance(content, dict) or content.get("role") not in ("user", "model"):
                return _error(400, "Please use a valid role: user, model.")
        tier = request.headers.get("X-Vertex-AI-LLM-Shared-Request-Type")
        s = self._take(rpc)
        if s.delay:
            await asyncio.sleep(s.delay)
        if s.status != 200:
            err = error_body(s.status)
            err["error"].update(s.error or {})
            return _json(err, s.status, s.headers)
        if s.cut_after is not None and rpc == "generateContent":
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        events = s.stream or ([s.reply] if s.reply is not None else self._events(model, req))
        events = [self._with_traffic(e, tier) for e in events]
        if rpc == "generateContent":
            return _json(merge_stream(events), headers=s.headers)
        return await self._stream(request, events, s)

    @staticmethod
    def _with_traffic(event: JSON, tier: str | None) -> JSON:
        usage = event.get("usageMetadata")
        if isinstance(usage, dict) and "trafficType" not in usage:
            event = {**event, "usageMetadata": {**usage, "trafficType": TRAFFIC.get(tier, "ON_DEMAND")}}
        return event

    def _events(self, model: str, req: JSON) -> list[JSON]:
        contents = [c for c in req.get("contents") or [] if isinstance(c, dict)]
        last = next((c for c in reversed(contents) if c.get("role") == "user"), {})
        words = ("vertex: " + "".join(_texts(last))).split()
        prompt = _prompt_tokens(req)
        limit = (req.get("generationConfig") or {}).get("maxOutputTokens")
        finish = "STOP"
        if isinstance(limit, int) and 0 < limit < len(words):
            words, finish = words[:limit], "MAX_TOKENS"
        events = []
        for i, word in enumerate(words):
            cand: JSON = {"content": {"role": "model", "parts": [{"text": word if i == 0 else " " + word}]}}
            if i == len(words) - 1:
                cand["finishReason"] = finish
            events.append({"candidates": [cand], "modelVersion": model,
                           "createTime": "2026-12-03T12:00:00.000000Z", "responseId": "fake-vertex",
                           "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": i + 1,
                                             "totalTokenCount": prompt + i + 1}})
        return events

    async def _stream(self, request: web.Request, events: list[JSON], s: _Script) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", **s.headers})
        gate = s.gate
        try:
            await resp.prepare(request)
            for i, event in enumerate(events):
                if i == s.cut_after:
                    if request.transport is not None:
                        request.transport.abort()
                    return resp
                await resp.write(b"data: " + json.dumps(event).encode() + b"\r\n\r\n")
                if gate is not None and i + 1 == gate.first_events:
                    gate.reached.set()
                    while not gate.released:
                        await asyncio.sleep(0.005)
                    await resp.write(b"")  # a client that left is noticed here
            await resp.write_eof()
        except ConnectionResetError:
            with self._lock:
                self.disconnects += 1
                self._lock.notify_all()
        return resp

    def _predict(self, req: JSON) -> web.Response:
        instances = req.get("instances")
        if not isinstance(instances, list) or not instances:
            return _error(400, "instances must be a non-empty list.")
        dims = int((req.get("parameters") or {}).get("outputDimensionality") or 8)
        predictions = [{"embeddings": {"values": _embedding(str(i.get("content", "")), dims),
                                       "statistics": {"token_count": len(str(i.get("content", "")).split()),
                                                      "truncated": False}}}
                       for i in instances]
        return _json({"predictions": predictions, "metadata": {"billableCharacterCount": 1}})
