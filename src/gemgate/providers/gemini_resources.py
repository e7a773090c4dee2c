"""Google's resource APIs (files, cachedContents, batches) on a ``gemini`` provider's
upstream, for the gateway's copies of its own resources.

Files are uploaded with the resumable protocol exactly as the SDKs do (a ``start`` that
answers ``X-Goog-Upload-URL``, then chunks of :data:`CHUNK` bytes, the last one with
``finalize``), read from the content store piece by piece. Every call names the upstream
key of the attempt it serves; failures raise :mod:`gemgate.errors` types (an upstream
error's message scrubbed of that key), so the attempt loop judges them like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from gemgate.errors import BadGateway, upstream_error
from gemgate.providers import http
from gemgate.providers.gemini import GeminiProvider, answer_json, error_json

#: Bytes per upload request (the SDKs' chunk size).
CHUNK = 8 << 20


class GeminiResources:
    def __init__(self, provider: GeminiProvider) -> None:
        self.provider = provider
        self.name = provider.name
        root = provider.base_url
        self._api = f"{root}/{provider.api_version}/"
        self._upload = f"{root}/upload/{provider.api_version}/files"
        self._download = f"{root}/download/{provider.api_version}/"

    # --- plumbing ------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        url: str,
        credential: str | None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        sent = dict(headers or {})
        if credential:
            sent["x-goog-api-key"] = credential
        session = self.provider.session
        resp = await http.send(session, url, self.name, method, data=body, headers=sent)
        data = await http.read(resp, self.name)
        if resp.status != 200:
            raise upstream_error(
                resp.status,
                error_json(data),
                provider=self.name,
                secrets=(credential,) if credential else (),
                retry_after=http.retry_after(resp),
            )
        return resp, data

    async def _json(
        self, method: str, url: str, credential: str | None, body: Any = None
    ) -> dict[str, Any]:
        payload = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if payload is not None else None
        _resp, data = await self._call(method, url, credential, body=payload, headers=headers)
        return answer_json(data, self.name) if data else {}

    # --- files ---------------------------------------------------------------------------

    async def upload(
        self,
        credential: str | None,
        *,
        display_name: str | None,
        mime_type: str,
        size: int,
        content: AsyncIterator[bytes],
    ) -> dict[str, Any]:
        """Upload ``size`` bytes of ``content``; the upstream's File resource."""
        meta: dict[str, Any] = {"mimeType": mime_type}
        if display_name:
            meta["displayName"] = display_name
        start_headers = {
            "content-type": "application/json",
            "x-goog-upload-protocol": "resumable",
            "x-goog-upload-command": "start",
            "x-goog-upload-header-content-length": str(size),
            "x-goog-upload-header-content-type": mime_type,
        }
        resp, _ = await self._call(
            "POST", self._upload, credential, body=orjson.dumps({"file": meta}), headers=start_headers
        )
        url = resp.headers.get("x-goog-upload-url")
        if not url:
            raise BadGateway(f"Upstream '{self.name}' gave no upload URL.")
        offset = 0
        answer = b""
        pending = bytearray()

        async def send(block: bytes, last: bool) -> bytes:
            command = "upload, finalize" if last else "upload"
            headers = {"x-goog-upload-command": command, "x-goog-upload-offset": str(offset)}
            chunk_resp, data = await self._call("POST", url, credential, body=block, headers=headers)
            status = chunk_resp.headers.get("x-goog-upload-status")
            if status != ("final" if last else "active"):
                raise BadGateway(f"Upstream '{self.name}' broke off the upload ({status}).")
            return data

        async for piece in content:
            pending += piece
            while len(pending) >= CHUNK and offset + CHUNK < size:
                block = bytes(pending[:CHUNK])
                del pending[:CHUNK]
                await send(block, last=False)
                offset += len(block)
        answer = await send(bytes(pending), last=True)
        try:
            parsed = orjson.loads(answer)
            return dict(parsed["file"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            raise BadGateway(f"Upstream '{self.name}' answered the upload unexpectedly.") from None

    async def get_file(self, credential: str | None, name: str) -> dict[str, Any]:
        return await self._json("GET", self._api + name, credential)

    async def delete(self, credential: str | None, name: str) -> None:
        """Delete a file, cached content or batch by its upstream name."""
        await self._json("DELETE", self._api + name, credential)

    async def download(self, credential: str | None, name: str) -> bytes:
        """A file's bytes (a batch's responses file)."""
        _resp, data = await self._call(
            "GET", f"{self._download}{name}:download?alt=media", credential
        )
        return data

    # --- cachedContents ------------------------------------------------------------------

    async def create_cache(self, credential: str | None, body: dict[str, Any]) -> dict[str, Any]:
        return await self._json("POST", self._api + "cachedContents", credential, body)

    async def update_cache(
        self, credential: str | None, name: str, expire_time: str
    ) -> dict[str, Any]:
        return await self._json(
            "PATCH", f"{self._api}{name}?updateMask=expireTime", credential, {"expireTime": expire_time}
        )

    # --- batches -------------------------------------------------------------------------

    async def create_batch(
        self, credential: str | None, model: str, method: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        return await self._json("POST", f"{self._api}models/{model}:{method}", credential, body)

    async def get_operation(self, credential: str | None, name: str) -> dict[str, Any]:
        return await self._json("GET", self._api + name, credential)

    async def cancel_batch(self, credential: str | None, name: str) -> None:
        await self._json("POST", f"{self._api}{name}:cancel", credential, {})
