"""``[server] public_url`` names the gateway in the URLs it hands out (upload URLs, file
URIs), path prefix included; the upload then proceeds on that path."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_process import GatewayProcess
from tests.resources.gateways import start

PUBLIC = "https://llm.example.com"


@pytest.fixture(scope="module")
def gw(
    google_a: FakeGemini, google_b: FakeGemini, openai_fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("public-url"), google_a, google_b, openai_fake,
                 server_extra=f'public_url = "{PUBLIC}"')
    yield proc
    proc.stop()


def test_urls_name_the_public_address(gw: GatewayProcess) -> None:
    key = gw.create_key("public")
    started = httpx.post(
        f"{gw.base_url}/gemini/upload/v1beta/files",
        headers={"x-goog-api-key": key, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                 "X-Goog-Upload-Header-Content-Length": "5", "X-Goog-Upload-Header-Content-Type": "text/plain"},
    )
    url = started.headers["x-goog-upload-url"]
    assert url.startswith(f"{PUBLIC}/gemini/upload/v1beta/files?upload_id=")
    local = url.replace(PUBLIC, gw.base_url)
    done = httpx.post(local, content=b"hello", headers={"X-Goog-Upload-Command": "upload, finalize",
                                                        "X-Goog-Upload-Offset": "0"})
    file = done.json()["file"]
    assert file["uri"] == f"{PUBLIC}/gemini/v1beta/{file['name']}"
    listed = httpx.get(f"{gw.base_url}/v1/files", headers={"x-goog-api-key": key}).json()
    assert listed["files"][0]["uri"] == f"{PUBLIC}/v1/{file['name']}"
