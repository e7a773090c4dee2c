"""The route table: every door's paths, as clients send them."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets
from tests.gateway_process import GatewayProcess

from gemgate.asgi import Request
from gemgate.routes import ROUTES, RouteTable, decoded_path


def request(method: str, path: str, headers: dict[str, str] | None = None, query: str = "") -> Request:
    scope = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    }
    return Request.from_scope(scope, None)  # type: ignore[arg-type]


TABLE = RouteTable(ROUTES, ("", "/gemini"))


def match(method: str, path: str, **kw: str) -> tuple[str, str, dict[str, str]] | None:
    req = request(method, path, **kw)
    decoded = decoded_path(req.path)
    assert decoded is not None
    found = TABLE.match("http", method, decoded, req)
    return None if found is None else (found.target, found.operation, found.params)


@pytest.mark.parametrize("prefix", ["", "/gemini"])
@pytest.mark.parametrize("version", ["v1", "v1beta", "v1alpha"])
def test_gemini_calls_under_every_prefix_and_version(prefix: str, version: str) -> None:
    assert match("POST", f"{prefix}/{version}/models/gemini-2.5-flash:generateContent") == (
        "gemini", "model.call",
        {"version": version, "model": "gemini-2.5-flash", "method": "generateContent"},
    )


def test_model_ids_with_slashes_and_encoded_colons() -> None:
    found = match("POST", "/v1/models/google/gemini-3.1-flash:lite%3AstreamGenerateContent")
    assert found is not None
    assert found[2]["model"] == "google/gemini-3.1-flash:lite"
    assert found[2]["method"] == "streamGenerateContent"
    assert decoded_path("/v1beta/models/../admin:generateContent") is None
    assert decoded_path("/v1beta/models/%2E%2E/x:generateContent") is None


def test_models_listing_belongs_to_gemini_with_a_gemini_key_else_to_openai() -> None:
    assert match("GET", "/v1/models", headers={"authorization": "Bearer k"})[:2] == ("openai", "models.list")  # type: ignore[index]
    assert match("GET", "/v1/models", headers={"x-goog-api-key": "k"})[:2] == ("gemini", "models.list")  # type: ignore[index]
    assert match("GET", "/v1/models", query="key=k")[:2] == ("gemini", "models.list")  # type: ignore[index]
    assert match("GET", "/gemini/v1/models/x/y")[:3] == ("gemini", "models.get", {"version": "v1", "model": "x/y"})  # type: ignore[index]


def test_openai_paths() -> None:
    assert match("POST", "/v1/chat/completions")[:2] == ("openai", "chat.completions")  # type: ignore[index]
    assert match("POST", "/v1/embeddings")[:2] == ("openai", "embeddings")  # type: ignore[index]
    assert match("GET", "/v1/chat/completions") is None
    assert TABLE.allows("http", "/v1/chat/completions") == ["POST"]


def test_unserved_websocket_paths_are_refused_cleanly(gateway: GatewayProcess) -> None:
    url = gateway.base_url.replace("http://", "ws://")
    path = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateMusic"

    async def connect() -> int:
        try:
            async with websockets.connect(url + path):
                return 101
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(connect()) == 403
    # The server is still fine afterwards.
    assert httpx.get(gateway.base_url + "/healthz").status_code == 200


def test_live_paths() -> None:
    service = "google.ai.generativelanguage.{v}.GenerativeService"
    for prefix in ("", "/gemini"):
        for slashes in ("/", "//"):
            for version in ("v1", "v1beta", "v1alpha"):
                for method in ("BidiGenerateContent", "BidiGenerateContentConstrained"):
                    path = f"{prefix}{slashes}ws/{service.format(v=version)}.{method}"
                    found = TABLE.match("websocket", "", path)
                    assert found is not None, path
                    assert (found.target, found.operation, found.params) == ("gemini_live", method, {"version": version})
    assert TABLE.match("websocket", "", "/ws/google.ai.generativelanguage.v2.GenerativeService.BidiGenerateContent") is None
    assert match("POST", "/v1alpha/auth_tokens")[:2] == ("auth_tokens", "create")  # type: ignore[index]
