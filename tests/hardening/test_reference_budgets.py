"""Content named by reference (a file, a cache) is bounded at the model's input token limit
when a budgeted key is admitted: the upstream bills it at full size, whatever the gateway
can see of it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.billing.gateways import MODEL, records, sqlite_url, start
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

PATH = f"/v1beta/models/{MODEL}:generateContent"
# gemini-2.5-flash: 1,048,576 input tokens at 0.30 USD / 1M is about 0.31 USD, far above
# this budget; a short text request with 10 output tokens costs a few millionths of a USD.
BUDGET_USD = "0.05"


@pytest.fixture(scope="module")
def gw(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("references"), fake_google)
    yield proc
    proc.stop()


def _request(**extra: object) -> dict[str, object]:
    parts: list[dict[str, object]] = [{"text": "Describe it."}]
    file_data = extra.pop("file_data", None)
    if file_data:
        parts.append({"fileData": file_data})
    return {
        "contents": [{"role": "user", "parts": parts}],
        "generationConfig": {"maxOutputTokens": 10},
        **extra,
    }


@pytest.mark.parametrize(
    "request_body",
    [
        _request(
            file_data={
                "mimeType": "video/mp4",
                "fileUri": "https://generativelanguage.googleapis.com/v1beta/files/abc123",
            }
        ),
        _request(cachedContent="cachedContents/long-video-cache"),
    ],
    ids=["fileData", "cachedContent"],
)
def test_a_reference_is_bounded_at_the_input_limit(
    gw: GatewayProcess, fake_google: FakeGemini, request_body: dict[str, object]
) -> None:
    name = "ref-cache" if "cachedContent" in request_body else "ref-file"
    key = gw.create_key(name, "--budget-usd", BUDGET_USD)
    headers = {"x-goog-api-key": key}

    # The same key can afford the request without the reference.
    plain = httpx.post(gw.base_url + PATH, json=_request(), headers=headers, timeout=30)
    assert plain.status_code == 200, plain.text
    fake_google.clear()

    resp = httpx.post(gw.base_url + PATH, json=request_body, headers=headers, timeout=30)
    err = resp.json()["error"]
    if "cachedContent" in request_body:
        # The gateway holds the caches: one it does not know is refused, unpaid.
        assert resp.status_code == 400 and "cachedContent" in err["message"], resp.text
    else:
        assert err["status"] == "RESOURCE_EXHAUSTED", resp.text
        assert resp.status_code in (402, 429)
        assert f"budget:{name}" in str(err["details"])
    assert not [r for r in fake_google.requests if r.rpc], "the upstream must not be called"
    assert len(records(sqlite_url(gw), key_name=name)) == 1  # only the plain request
