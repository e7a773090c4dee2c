"""Requests that name gateway resources: a ``fileData.fileUri`` of one of the gateway's
files, a ``cachedContent`` of one of its cached contents.

:meth:`Binder.bind` runs after a request is parsed: it finds what the request names,
checks the caller's key owns it (else 403, as Google answers), records the sizes for
admission and counting (``creq.references``), and installs ``creq.resolve``, which gives
each attempt the body for its channel:

* a Google channel gets the file's (and cache's) copy in its own upstream project, made
  on first use (:mod:`.copies`, :mod:`.cache_copies`);
* any other channel gets the file inline (text files as text parts, other types as
  ``inlineData``, up to :data:`INLINE_LIMIT`) and the cache's contents in the request.

A request naming resources is never forwarded as the client's bytes: its references are
the gateway's own.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from gemgate.errors import InvalidArgument, PermissionDenied
from gemgate.resources.copies import FileCopies, speaks_resources
from gemgate.resources.files import FileService, reference
from gemgate.store.files_sql import FileRow
from gemgate.store.keys import KeyRecord
from gemgate.tokens import is_text_mime
from gemgate.types.canonical import CanonicalRequest

#: The most a file may weigh to be sent inline to a channel without a files API.
INLINE_LIMIT = 20 << 20
_OUR_URI = re.compile(r"(?:^|/)(?:v1beta|v1|v1alpha)/files/([a-z0-9]{24})$|^files/([a-z0-9]{24})$")
BINDS = frozenset(
    {"generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents"}
)

# (path, part) of every part that names one of our files, keyed by the file's id.
Parts = list[tuple[str, str, dict[str, Any]]]


def file_id_of(uri: Any) -> str | None:
    if not isinstance(uri, str):
        return None
    match = _OUR_URI.search(uri.split("?", 1)[0])
    return (match.group(1) or match.group(2)) if match else None


def named_files(body: dict[str, Any], prefix: str = "") -> Parts:
    """(field path, file id, part) of each ``fileData`` part naming a gateway file."""
    found: Parts = []
    system = body.get("systemInstruction")
    groups: list[tuple[str, Any]] = []
    if isinstance(system, dict):
        groups.append((f"{prefix}systemInstruction", system))
    contents = body.get("contents")
    if isinstance(contents, list):
        groups += [(f"{prefix}contents[{i}]", c) for i, c in enumerate(contents)]
    content = body.get("content")  # embedContent
    if isinstance(content, dict):
        groups.append((f"{prefix}content", content))
    for path, group in groups:
        parts = group.get("parts") if isinstance(group, dict) else None
        for j, part in enumerate(parts if isinstance(parts, list) else ()):
            data = part.get("fileData") if isinstance(part, dict) else None
            ident = file_id_of(data.get("fileUri")) if isinstance(data, dict) else None
            if ident is not None:
                found.append((f"{path}.parts[{j}].fileData", ident, part))
    return found


def replace_parts(body: dict[str, Any], swap: Callable[[dict[str, Any]], dict[str, Any] | None]) -> dict[str, Any]:
    """A copy of ``body`` with each part ``swap`` replaces (None: kept), sharing the rest."""

    def content(c: Any) -> Any:
        if not isinstance(c, dict) or not isinstance(c.get("parts"), list):
            return c
        parts = [swap(p) if isinstance(p, dict) else None for p in c["parts"]]
        if all(p is None for p in parts):
            return c
        return {**c, "parts": [n if n is not None else o for n, o in zip(parts, c["parts"], strict=True)]}

    out = dict(body)
    if "systemInstruction" in out:
        out["systemInstruction"] = content(out["systemInstruction"])
    if isinstance(out.get("contents"), list):
        out["contents"] = [content(c) for c in out["contents"]]
    if "content" in out:
        out["content"] = content(out["content"])
    return out


@dataclass(slots=True)
class Plan:
    """What one request names, as the resolver needs it."""

    files: dict[str, FileRow]
    paths: dict[str, str]  # file id -> the field path of its first part
    inner: bool  # countTokens' generateContentRequest holds the request
    cache: Any = None  # the cached content it names (caches.BoundCache)


class Binder:
    def __init__(self, files: FileService, copies: FileCopies) -> None:
        self.files = files
        self.copies = copies
        # Set by the caches service: (key, route, name) -> cache, and the cache resolver.
        self.find_cache: Callable[[KeyRecord, Any, str], Awaitable[Any]] | None = None
        self.resolve_cache: Callable[[Any, Any, Any, dict[str, Any]], Awaitable[dict[str, Any]]] | None = None

    @staticmethod
    def names_any(creq: CanonicalRequest) -> bool:
        """Whether the request names a file or a cached content at all (no I/O: most
        requests name neither and skip :meth:`bind`)."""
        if creq.method not in BINDS:
            return False
        body = creq.body
        inner = body.get("generateContentRequest") if creq.method == "countTokens" else None
        request = inner if isinstance(inner, dict) else body
        return bool(request.get("cachedContent")) or bool(named_files(request))

    async def bind(self, key: KeyRecord, route: Any, creq: CanonicalRequest) -> None:
        if creq.method not in BINDS:
            return
        body = creq.body
        inner = creq.method == "countTokens" and isinstance(body.get("generateContentRequest"), dict)
        request = body["generateContentRequest"] if inner else body
        plan = await self.plan(key, route, request, "generateContentRequest." if inner else "")
        if plan is None:
            return
        plan.inner = inner
        creq.raw = None
        creq.references = {**creq.references, **self.references(plan, request)}
        if plan.cache is not None:
            creq.prefer = tuple(plan.cache.channels)

        async def resolve(channel: Any, upstream_key: Any) -> dict[str, Any]:
            if not plan.inner:
                return await self.resolve(plan, channel, upstream_key, body)
            resolved = await self.resolve(plan, channel, upstream_key, body["generateContentRequest"])
            return {**body, "generateContentRequest": resolved}

        creq.resolve = resolve

    async def plan(self, key: KeyRecord, route: Any, request: dict[str, Any], prefix: str = "") -> Plan | None:
        """What ``request`` names, checked against the key and the model; None: nothing."""
        named = named_files(request, prefix)
        cache_name = request.get("cachedContent")
        if not named and not cache_name:
            return None
        ids = sorted({ident for _path, ident, _part in named})
        rows = await self.files.referenced(key, ids)
        paths: dict[str, str] = {}
        for path, ident, _part in named:
            row = rows.get(ident)
            if row is None:
                raise PermissionDenied(
                    f"You do not have permission to access the File {ident} or it may not exist."
                )
            paths.setdefault(ident, path)
            if row.modality not in route.info.input_modalities:
                raise InvalidArgument.field(
                    path,
                    f"model {route.model_id} cannot read files/{ident}: it takes "
                    f"{', '.join(route.info.input_modalities)} input, not {row.mime_type}",
                )
        cache = None
        if cache_name:
            if self.find_cache is None:
                raise InvalidArgument.field(f"{prefix}cachedContent", "cached contents are not available")
            for name in ("systemInstruction", "tools", "toolConfig"):
                if request.get(name):
                    raise InvalidArgument.field(
                        f"{prefix}{name}",
                        "CachedContent can not be used with GenerateContent request setting "
                        "system_instruction, tools or tool_config; put them in the cache",
                    )
            cache = await self.find_cache(key, route, str(cache_name))
            rows = {**cache.files, **rows}
        return Plan(rows, paths, False, cache)

    def references(self, plan: Plan, request: dict[str, Any]) -> dict[str, Any]:
        refs: dict[str, Any] = {}
        for _path, ident, part in named_files(request):
            refs[part["fileData"]["fileUri"]] = reference(plan.files[ident])
        if plan.cache is not None:
            refs[str(request["cachedContent"])] = plan.cache.reference
        return refs

    async def resolve(self, plan: Plan, channel: Any, key: Any, request: dict[str, Any]) -> dict[str, Any]:
        if plan.cache is not None and self.resolve_cache is not None:
            request = await self.resolve_cache(plan.cache, channel, key, request)
        wanted = {ident: plan.files[ident] for _p, ident, _part in named_files(request) if ident in plan.files}
        if not wanted:
            return request
        if speaks_resources(channel):
            uris = {ident: await self.copies.uri(channel, key, row) for ident, row in wanted.items()}

            def upstream(part: dict[str, Any]) -> dict[str, Any] | None:
                data = part.get("fileData")
                ident = file_id_of(data.get("fileUri")) if isinstance(data, dict) else None
                if ident is None or ident not in uris:
                    return None
                assert isinstance(data, dict)
                return {**part, "fileData": {**data, "fileUri": uris[ident]}}

            return replace_parts(request, upstream)
        inline = {ident: await self._inline(plan, ident, row, channel) for ident, row in wanted.items()}

        def inlined(part: dict[str, Any]) -> dict[str, Any] | None:
            data = part.get("fileData")
            ident = file_id_of(data.get("fileUri")) if isinstance(data, dict) else None
            if ident is None or ident not in inline:
                return None
            rest = {k: v for k, v in part.items() if k not in ("fileData", "videoMetadata")}
            return {**rest, **inline[ident]}

        return replace_parts(request, inlined)

    async def _inline(self, plan: Plan, ident: str, row: FileRow, channel: Any) -> dict[str, Any]:
        if row.size_bytes > INLINE_LIMIT:
            raise InvalidArgument.field(
                plan.paths.get(ident, "fileData"),
                f"files/{ident} has {row.size_bytes} bytes; channel {channel.label} takes files "
                f"only inline, up to {INLINE_LIMIT} bytes",
            )
        data = bytearray()
        async for block in self.files.content(row.id):
            data += block
        if is_text_mime(row.mime_type):
            return {"text": data.decode("utf-8", "replace")}
        return {"inlineData": {"mimeType": row.mime_type, "data": base64.b64encode(data).decode()}}
