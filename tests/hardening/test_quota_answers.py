"""A spent budget tells clients to stop, a rate limit tells them when to retry: real SDKs,
with their retries on, against the real gateway."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types
from tests.gateway_process import GatewayProcess

MODEL = "gemini-2.5-flash"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"


def counting_client(sent: list[str]) -> httpx.Client:
    return httpx.Client(event_hooks={"request": [lambda r: sent.append(r.url.path)]}, timeout=30)


def gemini(gw: GatewayProcess, key: str, sent: list[str]) -> genai.Client:
    return genai.Client(
        api_key=key,
        http_options=types.HttpOptions(
            base_url=gw.base_url,
            api_version="v1beta",
            httpx_client=counting_client(sent),
            retry_options=types.HttpRetryOptions(attempts=4, initial_delay=0.05, max_delay=0.2),
        ),
    )


def test_a_spent_budget_is_402_and_no_sdk_retries_it(
    gateway: GatewayProcess, new_key: Callable[..., str]
) -> None:
    key = new_key("--budget-usd", "0.0000001")
    sent: list[str] = []
    with pytest.raises(genai_errors.ClientError) as caught:
        gemini(gateway, key, sent).models.generate_content(model=MODEL, contents="hello")
    assert caught.value.code == 402
    assert caught.value.status == "RESOURCE_EXHAUSTED"
    details = caught.value.details["error"]["details"]
    assert any(d["@type"] == QUOTA_FAILURE for d in details)
    assert not any(d["@type"] == RETRY_INFO for d in details)
    assert len(sent) == 1, sent

    sent.clear()
    client = openai.OpenAI(
        api_key=key, base_url=gateway.base_url + "/v1", max_retries=3, http_client=counting_client(sent)
    )
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "insufficient_quota"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert len(sent) == 1, sent


def test_a_rate_limit_says_when_to_retry(gateway: GatewayProcess, new_key: Callable[..., str]) -> None:
    key = new_key("--rpm", "1")
    url = f"{gateway.base_url}/v1beta/models/{MODEL}:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    assert httpx.post(url, json=body, headers={"x-goog-api-key": key}).status_code == 200
    refused = httpx.post(url, json=body, headers={"x-goog-api-key": key})
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    details = refused.json()["error"]["details"]
    retry = [d for d in details if d["@type"] == RETRY_INFO]
    assert retry == [{"@type": RETRY_INFO, "retryDelay": f"{retry_after}s"}]
    assert any(d["@type"] == QUOTA_FAILURE for d in details)
    assert "x-should-retry" not in refused.headers

    client = openai.OpenAI(api_key=key, base_url=gateway.base_url + "/v1", max_retries=0)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert info.value.code == "rate_limit_exceeded"
    assert 1 <= int(info.value.response.headers["retry-after"]) <= 60
