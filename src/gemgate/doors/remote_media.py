"""Fetching media that a client names by http(s) URL, guarded against SSRF.

Off unless the config allows it. When on, only http and https URLs whose host resolves
exclusively to public addresses are fetched (no loopback, private, link-local, multicast
or reserved address; checked on the address actually connected to), redirects are not
followed, and what one request may fetch is bounded: at most ``max_urls`` URLs, each at
most ``max_bytes`` and all together at most ``max_total_bytes`` (a request naming more is
refused before anything is fetched; one whose media turn out larger stops reading at the
limit). A fetched file becomes ``inlineData``.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult

from gemgate.errors import InvalidArgument

MAX_BYTES = 20 * 1024 * 1024
MAX_URLS = 16
MAX_TOTAL_BYTES = 20 * 1024 * 1024
TIMEOUT_S = 15


def _is_public(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_global and not ip.is_multicast


class _PublicOnlyResolver(aiohttp.abc.AbstractResolver):
    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        out: list[ResolveResult] = []
        for fam, _type, proto, _name, sockaddr in infos:
            address = str(sockaddr[0])
            if not _is_public(address):
                raise OSError(f"{host} resolves to a non-public address")
            out.append(
                ResolveResult(
                    hostname=host, host=address, port=port, family=fam, proto=proto, flags=socket.AI_NUMERICHOST
                )
            )
        return out

    async def close(self) -> None:
        return None


class RemoteMedia:
    """``resolver`` makes the DNS resolver of each fetch (by default one that refuses any
    non-public address)."""

    def __init__(
        self,
        *,
        enabled: bool,
        max_bytes: int = MAX_BYTES,
        max_urls: int = MAX_URLS,
        max_total_bytes: int = MAX_TOTAL_BYTES,
        resolver: Callable[[], aiohttp.abc.AbstractResolver] = _PublicOnlyResolver,
    ) -> None:
        self.enabled = enabled
        self.max_bytes = max_bytes
        self.max_urls = max_urls
        self.max_total_bytes = max_total_bytes
        self._resolver = resolver

    async def resolve(self, request: dict[str, Any]) -> None:
        """Replace every http(s) ``fileData`` part of ``request`` by fetched ``inlineData``."""
        found: list[tuple[str, dict[str, Any], dict[str, Any], str]] = []
        for i, content in enumerate(request.get("contents") or ()):
            for j, part in enumerate(content.get("parts") or ()):
                file = part.get("fileData")
                if not file:
                    continue
                uri = str(file.get("fileUri") or "")
                if urlsplit(uri).scheme in ("http", "https"):
                    found.append((f"contents[{i}].parts[{j}]", part, file, uri))
        if len(found) > self.max_urls and self.enabled:
            raise InvalidArgument.field(
                found[self.max_urls][0],
                f"at most {self.max_urls} media URLs are fetched per request; send the "
                "others inline (data: URIs)",
            )
        left = self.max_total_bytes
        for path, part, file, uri in found:
            mime, raw = await self.fetch(uri, path, budget=left)
            left -= len(raw)
            part.pop("fileData")
            part["inlineData"] = {
                "mimeType": mime or file.get("mimeType") or "application/octet-stream",
                "data": base64.b64encode(raw).decode(),
            }
            del raw

    async def fetch(self, url: str, path: str, *, budget: int | None = None) -> tuple[str, bytes]:
        """The media at ``url`` (its type and bytes), at most ``max_bytes`` and ``budget``."""
        if not self.enabled:
            raise InvalidArgument.field(
                path, "media URLs are not fetched by this gateway; send the data inline (a data: URI)"
            )
        limit = self.max_bytes if budget is None else min(self.max_bytes, budget)
        if limit < self.max_bytes:
            too_big = (
                f"the media URLs of this request exceed {self.max_total_bytes} bytes in total"
            )
        else:
            too_big = f"the media at the URL exceeds {self.max_bytes} bytes"
        host = urlsplit(url).hostname or ""
        try:
            if _looks_like_ip(host) and not _is_public(host.strip("[]")):
                raise OSError("non-public address")
            connector = aiohttp.TCPConnector(resolver=self._resolver(), force_close=True)
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session, session.get(url, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise InvalidArgument.field(path, f"fetching the media URL gave HTTP {resp.status}")
                declared = resp.content_length
                if declared is not None and declared > limit:
                    raise InvalidArgument.field(path, too_big)
                body = bytearray()
                async for piece in resp.content.iter_chunked(65536):
                    body += piece
                    if len(body) > limit:
                        raise InvalidArgument.field(path, too_big)
                mime = resp.headers.get("content-type", "").split(";")[0].strip()
        except InvalidArgument:
            raise
        except (OSError, aiohttp.ClientError, TimeoutError):
            raise InvalidArgument.field(path, "the media URL could not be fetched (only public http(s) addresses are allowed)") from None
        return mime, bytes(body)


def _looks_like_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
