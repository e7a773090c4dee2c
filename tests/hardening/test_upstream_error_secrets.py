"""An upstream's error never carries the gateway's upstream key to a client: every string
in the details it keeps is scrubbed, and details about the upstream itself are dropped."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from tests.conftest import UPSTREAM_KEY
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

MODEL = "gemini-2.5-flash"
T = "type.googleapis.com/google.rpc."


def leaky_details() -> list[dict[str, object]]:
    k = UPSTREAM_KEY
    return [
        {"@type": T + "BadRequest", "fieldViolations": [{"field": f"key={k}", "description": f"bad key {k}"}]},
        {"@type": T + "DebugInfo", "detail": f"called with {k}", "stackEntries": [k]},
        {"@type": T + "LocalizedMessage", "locale": "en-US", "message": f"Key {k} is wrong"},
        {"@type": T + "QuotaFailure", "violations": [{"subject": f"project:{k}", "description": "over"}]},
        {"@type": T + "ErrorInfo", "reason": "SOMETHING", "domain": "googleapis.com", "metadata": {"key": k}},
        {"@type": T + "Help", "links": [{"description": "docs", "url": f"https://ai.google.dev/?key={k}"}]},
        {"@type": T + "RequestInfo", "requestId": "r-1", "servingData": k},
    ]


def test_upstream_details_through_the_openai_door(
    gateway: GatewayProcess, api_key: str, fake_google: FakeGemini
) -> None:
    fake_google.script(MODEL, status=400, error={"message": "bad", "details": leaky_details()})
    client = openai.OpenAI(api_key=api_key, base_url=gateway.base_url + "/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert UPSTREAM_KEY not in info.value.response.text


@pytest.mark.parametrize("status", [400, 429])
def test_upstream_details_reach_the_client_scrubbed(
    gateway: GatewayProcess, api_key: str, fake_google: FakeGemini, status: int
) -> None:
    fake_google.script(MODEL, status=status, error={"message": "bad", "details": leaky_details()})
    resp = httpx.post(
        f"{gateway.base_url}/v1beta/models/{MODEL}:generateContent",
        json={"contents": [{"parts": [{"text": "hi"}]}]},
        headers={"x-goog-api-key": api_key},
        timeout=30,
    )
    assert resp.status_code == status, resp.text
    assert UPSTREAM_KEY not in resp.text
    assert UPSTREAM_KEY[:20] not in resp.text
    kinds = [d["@type"].removeprefix(T) for d in resp.json()["error"].get("details", [])]
    assert "DebugInfo" not in kinds and "RequestInfo" not in kinds
    assert "ErrorInfo" not in kinds or all(
        d.get("domain") == "gemgate" for d in resp.json()["error"]["details"] if d["@type"] == T + "ErrorInfo"
    )
    for kept in ("BadRequest", "LocalizedMessage", "QuotaFailure", "Help"):
        assert kept in kinds
    if status == 429:
        time.sleep(1.5)  # the upstream key rests after a 429; leave it usable for others
