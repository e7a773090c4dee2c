"""Fetching media that a client names by http(s) URL, guarded against SSRF.

Off unless the config allows it. When on, only http and https URLs whose host resolves
exclusively to public addresses are fetched (no loopback, private, link-local, multicast
or reserved address; checked on the address actually connected to), redirects are not
followed, and the body is limited in size. A fetched file becomes ``inlineData``.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import ResolveResult

from gemgate.errors import InvalidArgument

MAX_BYTES = 20 * 1024 * 1024
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
    def __init__(self, *, enabled: bool, max_bytes: int = MAX_BYTES) -> None:
        self.enabled = enabled
        self.max_bytes = max_bytes

    async def resolve(self, request: dict[str, Any]) -> None:
        """Replace every http(s) ``fileData`` part of ``request`` by fetched ``inlineData``."""
        for i, content in enumerate(request.get("contents") or ()):
            for j, part in enumerate(content.get("parts") or ()):
                file = part.get("fileData")
                if not file:
                    continue
                uri = str(file.get("fileUri") or "")
                if urlsplit(uri).scheme not in ("http", "https"):
                    continue
                path = f"contents[{i}].parts[{j}]"
                mime, data = await self.fetch(uri, path)
                part.pop("fileData")
                part["inlineData"] = {"mimeType": mime or file.get("mimeType") or "application/octet-stream", "data": data}

    async def fetch(self, url: str, path: str) -> tuple[str, str]:
        if not self.enabled:
            raise InvalidArgument.field(
                path, "media URLs are not fetched by this gateway; send the data inline (a data: URI)"
            )
        host = urlsplit(url).hostname or ""
        try:
            if _looks_like_ip(host) and not _is_public(host.strip("[]")):
                raise OSError("non-public address")
            connector = aiohttp.TCPConnector(resolver=_PublicOnlyResolver(), force_close=True)
            timeout = aiohttp.ClientTimeout(total=TIMEOUT_S)
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session, session.get(url, allow_redirects=False) as resp:
                if resp.status != 200:
                    raise InvalidArgument.field(path, f"fetching the media URL gave HTTP {resp.status}")
                body = bytearray()
                async for piece in resp.content.iter_chunked(65536):
                    body += piece
                    if len(body) > self.max_bytes:
                        raise InvalidArgument.field(path, f"the media at the URL exceeds {self.max_bytes} bytes")
                mime = resp.headers.get("content-type", "").split(";")[0].strip()
        except InvalidArgument:
            raise
        except (OSError, aiohttp.ClientError, TimeoutError):
            raise InvalidArgument.field(path, "the media URL could not be fetched (only public http(s) addresses are allowed)") from None
        return mime, base64.b64encode(bytes(body)).decode()


def _looks_like_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
