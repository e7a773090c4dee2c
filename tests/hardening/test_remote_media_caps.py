"""Media fetched by URL for the OpenAI door is bounded per request, in count and in total
bytes, not only per URL: a request naming many large files cannot make the gateway hold
them all. A real HTTP server serves the media; the test's resolver sends the fetches to it
(the gateway's own resolver refuses such a private address)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from gemgate.doors.remote_media import RemoteMedia
from gemgate.errors import InvalidArgument

MB = 1024 * 1024


class ToLocalhost(AbstractResolver):
    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        return [ResolveResult(hostname=host, host="127.0.0.1", port=port, family=socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None


class MediaServer:
    def __init__(self) -> None:
        self.served = 0
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def file(self, request: web.Request) -> web.StreamResponse:
        self.served += 1
        size = int(request.match_info["mb"]) * MB
        resp = web.StreamResponse(headers={"content-type": "image/png"})
        await resp.prepare(request)
        chunk = b"\x89PNG" + b"\0" * (MB - 4)
        for _ in range(size // MB):
            await resp.write(chunk)
        return resp

    async def __aenter__(self) -> MediaServer:
        app = web.Application()
        app.router.add_get("/{name}/{mb}", self.file)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def request_naming(urls: list[str]) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"text": "compare these"}]
    parts += [{"fileData": {"mimeType": "image/png", "fileUri": u}} for u in urls]
    return {"contents": [{"role": "user", "parts": parts}]}


def media(**limits: int) -> RemoteMedia:
    return RemoteMedia(enabled=True, resolver=ToLocalhost, **limits)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_too_many_urls_are_refused_before_any_fetch() -> None:
    async def scenario() -> None:
        async with MediaServer() as s:
            urls = [f"http://media.test:{s.port}/f{i}/1" for i in range(17)]
            with pytest.raises(InvalidArgument) as caught:
                await media().resolve(request_naming(urls))
            assert caught.value.param == "contents[0].parts[17]"
            assert "at most 16 media URLs" in caught.value.message
            assert s.served == 0

    run(scenario())


def test_the_total_of_a_requests_media_is_bounded() -> None:
    async def scenario() -> None:
        async with MediaServer() as s:
            # Each file is within the per-URL limit; together they are not.
            urls = [f"http://media.test:{s.port}/f{i}/5" for i in range(3)]
            with pytest.raises(InvalidArgument) as caught:
                await media(max_total_bytes=12 * MB).resolve(request_naming(urls))
            assert caught.value.param == "contents[0].parts[3]"
            assert "in total" in caught.value.message
            # Within the total, every URL becomes inline data.
            request = request_naming(urls[:2])
            await media(max_total_bytes=12 * MB).resolve(request)
            inline = [p["inlineData"] for p in request["contents"][0]["parts"][1:]]
            assert [i["mimeType"] for i in inline] == ["image/png", "image/png"]
            assert all(len(i["data"]) == 4 * ((5 * MB + 2) // 3) for i in inline)

    run(scenario())
