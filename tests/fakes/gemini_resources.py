"""Google's resource APIs for the fake upstream (mixed into ``FakeGemini``): files
(resumable and multipart uploads, get, list, delete, download of generated files),
cachedContents, batches (inline or JSONL file input; Operations that finish after a few
polls) and what generateContent makes of them (a fileData URI must name one of this
project's ACTIVE files; a cachedContent must exist and match the model, and its tokens come
back as ``cachedContentTokenCount``).

One fake is one upstream project: every key it accepts sees the same resources. Token
counts follow the fake's rule (one token per whitespace-separated word) with 258 per
non-text file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

JSON = dict[str, Any]
FILE_TOKENS = 258
_RESOURCE = re.compile(
    r"/(?:(upload|download)/)?(v1beta|v1)/(files|cachedContents|batches)(?:/([^/:]+))?(?::(\w+))?"
)
_BATCH_RPC = re.compile(r"/(v1beta|v1)/models/(.+):(batchGenerateContent|asyncBatchEmbedContent)")
_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1main."


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _new_id() -> str:
    return secrets.token_hex(6)


@dataclass
class FakeFile:
    name: str
    mime_type: str
    display_name: str | None
    size: int
    data: bytearray = field(default_factory=bytearray)
    state: str = "PROCESSING"
    source: str = "UPLOADED"
    created: datetime = field(default_factory=_now)
    expires: datetime = field(default_factory=lambda: _now() + timedelta(hours=48))

    def resource(self, base: str) -> JSON:
        out: JSON = {"name": self.name, "mimeType": self.mime_type, "sizeBytes": str(len(self.data))}
        if self.display_name:
            out["displayName"] = self.display_name
        out |= {"createTime": _ts(self.created), "updateTime": _ts(self.created),
                "expirationTime": _ts(self.expires),
                "sha256Hash": base64.b64encode(hashlib.sha256(self.data).hexdigest().encode()).decode(),
                "uri": f"{base}/v1beta/{self.name}", "state": self.state, "source": self.source}
        if self.source == "GENERATED":
            out["downloadUri"] = f"{base}/download/v1beta/{self.name}:download?alt=media"
        return out


@dataclass
class FakeBatch:
    name: str
    model: str
    kind: str  # generate | embed
    display_name: str
    requests: list[JSON]  # each {"request": ..., "metadata"?: ..., "key"?: ...}
    from_file: bool
    state: str = "BATCH_STATE_PENDING"
    polls: int = 0
    created: datetime = field(default_factory=_now)
    output: JSON | None = None


class GeminiResourcesFake:
    """State and handlers; ``FakeGemini`` calls :meth:`_resource_route` first."""

    #: Fewest tokens a cache may hold (Google: 1024 for 2.5 Flash).
    cache_min_tokens = 1024
    #: GETs of a batch before it is done (PENDING, RUNNING, ... then SUCCEEDED).
    batch_polls = 2

    def _reset_resources(self) -> None:
        self.files: dict[str, FakeFile] = {}
        self.uploads: dict[str, FakeFile] = {}
        self.caches: dict[str, JSON] = {}
        self.batches: dict[str, FakeBatch] = {}
        self.cache_min_tokens = type(self).cache_min_tokens
        self.batch_polls = type(self).batch_polls

    # -- helpers the model calls use ---------------------------------------------------------
    def _resolve_refs(self, req: JSON, model: str) -> JSON | web.Response:
        """``req`` with files inlined as text and the cache prepended, for the fake's model;
        an error answer when a reference is not this project's."""
        from tests.fakes.gemini_upstream import _get, _json_error

        media = 0
        contents = []
        for content in _get(req, "contents") or []:
            parts = []
            for part in (content.get("parts") or []) if isinstance(content, dict) else []:
                data = _get(part, "fileData") if isinstance(part, dict) else None
                if not isinstance(data, dict):
                    parts.append(part)
                    continue
                uri = str(_get(data, "fileUri") or "")
                name = "files/" + uri.rsplit("/files/", 1)[-1] if "/files/" in uri else uri
                f = self.files.get(name)
                if f is None or f.expires <= _now():
                    return _json_error(403, f"You do not have permission to access the File "
                                       f"{name.removeprefix('files/')} or it may not exist.")
                if f.state != "ACTIVE":
                    return _json_error(400, f"The File {name} is not in an ACTIVE state and "
                                       "usage is not allowed.")
                if f.mime_type.startswith("text/"):
                    parts.append({"text": f.data.decode("utf-8", "replace")})
                else:
                    media += 1
            contents.append({**content, "parts": parts} if isinstance(content, dict) else content)
        out = {**req, "contents": contents, "_mediaTokens": media * FILE_TOKENS}
        cache_name = _get(req, "cachedContent")
        if cache_name:
            cache = self.caches.get(str(cache_name))
            if cache is None or cache["_expires"] <= _now():
                return _json_error(403, "CachedContent not found (or permission denied)")
            if cache["model"] != f"models/{model}":
                return _json_error(400, f"Model mismatch: the cached content is of "
                                   f"{cache['model']}, the request names models/{model}.")
            if any(_get(req, k) for k in ("systemInstruction", "tools", "toolConfig")):
                return _json_error(400, "CachedContent can not be used with GenerateContent "
                                   "request setting system_instruction, tools or tool_config.")
            out["contents"] = list(cache.get("contents") or []) + contents
            if cache.get("systemInstruction"):
                out["systemInstruction"] = cache["systemInstruction"]
            out["_cachedTokens"] = cache["usageMetadata"]["totalTokenCount"]
            out.pop("cachedContent", None)
            out.pop("cached_content", None)
        return out

    # -- routing ---------------------------------------------------------------------------
    async def _resource_route(self, request: web.Request, path: str, body: bytes) -> web.StreamResponse | None:
        from tests.fakes.gemini_upstream import _json_error

        batch = _BATCH_RPC.fullmatch(path)
        m = _RESOURCE.fullmatch(path)
        if batch is None and m is None:
            return None
        if not (m is not None and m.group(1) == "upload" and "upload_id" in request.query):
            denied = self._check_auth(request)  # type: ignore[attr-defined]
            if denied is not None:
                return denied
        chunk = m is not None and m.group(1) == "upload" and "upload_id" in request.query
        try:
            data = json.loads(body) if body.strip() and not chunk else {}
        except ValueError:
            return _json_error(400, "Invalid JSON payload received.")
        if batch is not None:
            return self._create_batch(batch.group(2), batch.group(3), data)
        assert m is not None
        kind, collection, ident, verb = m.group(1), m.group(3), m.group(4), m.group(5)
        if collection == "files":
            return await self._files(request, kind, ident, verb, body, data)
        if collection == "cachedContents":
            return self._caches(request, ident, data)
        return self._batches(request, ident, verb)

    def _base(self) -> str:
        return self.base_url  # type: ignore[attr-defined,no-any-return]

    # -- files -----------------------------------------------------------------------------
    async def _files(self, request: web.Request, kind: str | None, ident: str | None,
                     verb: str | None, body: bytes, data: JSON) -> web.StreamResponse:
        from tests.fakes.gemini_upstream import _json_error, _json_response

        if kind == "upload":
            return self._upload(request, body, data)
        if ident is None:
            files = sorted(self.files.values(), key=lambda f: f.created, reverse=True)
            return _json_response({"files": [f.resource(self._base()) for f in files]} if files else {})
        f = self.files.get(f"files/{ident}")
        if f is None:
            return _json_error(403, f"You do not have permission to access the File {ident} or "
                               "it may not exist.")
        if verb == "download" or kind == "download":
            if f.source != "GENERATED":
                return _json_error(400, "Only generated files can be downloaded.")
            return web.Response(body=bytes(f.data), content_type=f.mime_type)
        if request.method == "DELETE":
            del self.files[f.name]
            return _json_response({})
        if f.state == "PROCESSING":
            f.state = "ACTIVE"  # ready at the next look
            return _json_response({**f.resource(self._base()), "state": "PROCESSING"})
        return _json_response(f.resource(self._base()))

    def _upload(self, request: web.Request, body: bytes, data: JSON) -> web.Response:
        from tests.fakes.gemini_upstream import _get, _json_error, _json_response

        h = request.headers
        upload_id = request.query.get("upload_id")
        if upload_id is None:
            meta = _get(data, "file") or {}
            f = FakeFile(f"files/{_new_id()}", h.get("X-Goog-Upload-Header-Content-Type")
                         or _get(meta, "mimeType") or "application/octet-stream",
                         _get(meta, "displayName"), int(h.get("X-Goog-Upload-Header-Content-Length", "0")))
            token = secrets.token_urlsafe(16)
            self.uploads[token] = f
            url = f"{self._base()}/upload/v1beta/files?upload_id={token}&upload_protocol=resumable"
            return web.Response(headers={"X-Goog-Upload-URL": url, "X-Goog-Upload-Status": "active"})
        f = self.uploads.get(upload_id)
        if f is None:
            return _json_error(404, "Upload not found.")
        offset = int(h.get("X-Goog-Upload-Offset", "-1"))
        if offset != len(f.data):
            return _json_error(400, "Invalid upload offset.")
        f.data += body
        if "finalize" not in h.get("X-Goog-Upload-Command", ""):
            return web.Response(headers={"X-Goog-Upload-Status": "active"})
        del self.uploads[upload_id]
        if len(f.data) != f.size:
            return _json_error(400, "Upload size does not match the declared size.")
        f.state = "PROCESSING" if f.mime_type.startswith("video/") else "ACTIVE"
        self.files[f.name] = f
        return _json_response({"file": f.resource(self._base())},
                              headers={"X-Goog-Upload-Status": "final"})

    def add_generated_file(self, data: bytes, mime_type: str = "application/jsonl") -> str:
        f = FakeFile(f"files/batch-{_new_id()}", mime_type, None, len(data), bytearray(data),
                     "ACTIVE", "GENERATED")
        self.files[f.name] = f
        return f.name

    # -- cachedContents --------------------------------------------------------------------
    def _cache_view(self, cache: JSON) -> JSON:
        return {k: v for k, v in cache.items() if not k.startswith("_") and k not in (
            "contents", "systemInstruction", "tools", "toolConfig")}

    def _caches(self, request: web.Request, ident: str | None, data: JSON) -> web.Response:
        from tests.fakes.gemini_upstream import _get, _json_error, _json_response, _prompt_tokens

        if ident is None and request.method == "GET":
            return _json_response({"cachedContents": [self._cache_view(c) for c in self.caches.values()]})
        if ident is None:
            model = _get(data, "model")
            if not isinstance(model, str) or model.removeprefix("models/") not in self._models:  # type: ignore[attr-defined]
                return _json_error(404, f"models/{model} is not found.")
            tokens = _prompt_tokens(data)
            if tokens < self.cache_min_tokens:
                return _json_error(400, f"Cached content is too small. total_token_count={tokens}, "
                                   f"min_total_token_count={self.cache_min_tokens}")
            now = _now()
            expires = now + timedelta(seconds=float(str(_get(data, "ttl") or "3600s").rstrip("s")))
            if _get(data, "expireTime"):
                expires = datetime.fromisoformat(str(_get(data, "expireTime")).replace("Z", "+00:00"))
            name = f"cachedContents/{_new_id()}"
            cache = {"name": name, "model": model if model.startswith("models/") else f"models/{model}",
                     "createTime": _ts(now), "updateTime": _ts(now), "expireTime": _ts(expires),
                     "usageMetadata": {"totalTokenCount": tokens}, "_expires": expires}
            for k in ("contents", "systemInstruction", "tools", "toolConfig", "displayName"):
                if _get(data, k) is not None:
                    cache[k] = _get(data, k)
            self.caches[name] = cache
            return _json_response(self._cache_view(cache))
        name = f"cachedContents/{ident}"
        found = self.caches.get(name)
        if found is None or found["_expires"] <= _now():
            return _json_error(403, "CachedContent not found (or permission denied)")
        if request.method == "DELETE":
            del self.caches[name]
            return _json_response({})
        if request.method == "PATCH":
            expires = _now() + timedelta(seconds=float(str(_get(data, "ttl") or "0s").rstrip("s")))
            if _get(data, "expireTime"):
                expires = datetime.fromisoformat(str(_get(data, "expireTime")).replace("Z", "+00:00"))
            found["_expires"] = expires
            found["expireTime"] = _ts(expires)
            found["updateTime"] = _ts(_now())
        return _json_response(self._cache_view(found))

    # -- batches ---------------------------------------------------------------------------
    def _create_batch(self, model: str, rpc: str, data: JSON) -> web.Response:
        from tests.fakes.gemini_upstream import _get, _json_error, _json_response

        batch = _get(data, "batch") or {}
        source = _get(batch, "inputConfig") or {}
        file_name = _get(source, "fileName")
        items: list[JSON] = []
        if file_name:
            f = self.files.get(str(file_name))
            if f is None:
                return _json_error(403, f"You do not have permission to access the File {file_name}.")
            for line in f.data.decode().splitlines():
                if line.strip():
                    items.append(json.loads(line))
        else:
            inner = _get(source, "requests") or {}
            items = list(_get(inner, "requests") or [])
        if not items:
            return _json_error(400, "* BatchGenerateContentRequest.batch.input_config: no requests")
        kind = "embed" if rpc == "asyncBatchEmbedContent" else "generate"
        b = FakeBatch(f"batches/{_new_id()}", model, kind, str(_get(batch, "displayName") or ""),
                      items, bool(file_name))
        self.batches[b.name] = b
        return _json_response(self._operation(b))

    def _operation(self, b: FakeBatch) -> JSON:
        kind = "EmbedContentBatch" if b.kind == "embed" else "GenerateContentBatch"
        meta: JSON = {"@type": _TYPE + kind, "model": f"models/{b.model}", "displayName": b.display_name,
                      "createTime": _ts(b.created), "updateTime": _ts(_now()),
                      "batchStats": {"requestCount": str(len(b.requests))}, "state": b.state,
                      "name": b.name}
        op: JSON = {"name": b.name, "metadata": meta}
        if b.output is not None:
            meta["output"] = b.output
            meta["endTime"] = _ts(_now())
            op["done"] = True
            op["response"] = {"@type": _TYPE + kind + "Output", **b.output}
        elif b.state in ("BATCH_STATE_CANCELLED", "BATCH_STATE_FAILED"):
            op["done"] = True
        return op

    def _finish(self, b: FakeBatch) -> None:
        from tests.fakes.gemini_upstream import _embedding, _get, _texts, merge_stream

        results = []
        for item in b.requests:
            req = _get(item, "request") or {}
            if b.kind == "embed":
                text = "".join(_texts(_get(req, "content")))
                response: JSON | web.Response = {"embedding": {"values": _embedding(text)}}
            else:
                resolved = self._resolve_refs(req, b.model)
                response = resolved if isinstance(resolved, web.Response) else merge_stream(
                    self._default_events(b.model, resolved))  # type: ignore[attr-defined]
            entry: JSON = {}
            if isinstance(response, web.Response):
                entry["error"] = {"code": response.status, "message": "request failed"}
            else:
                entry["response"] = response
            if b.from_file:
                results.append({"key": item.get("key"), **entry})
            else:
                results.append({**entry, **({"metadata": item["metadata"]} if "metadata" in item else {})})
        if b.from_file:
            lines = "\n".join(json.dumps(r) for r in results) + "\n"
            b.output = {"responsesFile": self.add_generated_file(lines.encode())}
        else:
            b.output = {"inlinedResponses": {"inlinedResponses": results}}
        b.state = "BATCH_STATE_SUCCEEDED"

    def _batches(self, request: web.Request, ident: str | None, verb: str | None) -> web.Response:
        from tests.fakes.gemini_upstream import _json_error, _json_response

        if ident is None:
            ops = [self._operation(b) for b in self.batches.values()]
            return _json_response({"operations": ops} if ops else {})
        b = self.batches.get(f"batches/{ident}")
        if b is None:
            return _json_error(404, f"Batch batches/{ident} not found.")
        if verb == "cancel":
            if b.output is None:
                b.state = "BATCH_STATE_CANCELLED"
            return _json_response({})
        if request.method == "DELETE":
            del self.batches[b.name]
            return _json_response({})
        if b.output is None and b.state not in ("BATCH_STATE_CANCELLED", "BATCH_STATE_FAILED"):
            b.polls += 1
            if b.polls >= self.batch_polls:
                self._finish(b)
            else:
                b.state = "BATCH_STATE_RUNNING"
        return _json_response(self._operation(b))

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False
