"""The order of the stages: nothing costly happens for a request admission refuses."""

from __future__ import annotations

import httpx
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_process import GatewayProcess


def test_remote_media_is_not_fetched_before_admission(
    gateway: GatewayProcess, new_key, fake_openai: FakeOpenAI  # type: ignore[no-untyped-def]
) -> None:
    """A key whose budget cannot pay is refused for its budget, before any remote image is
    looked at (the fetch would have been refused first, as remote media is off here)."""
    broke = new_key("--budget-usd", "0")
    body = {
        "model": "google/gemini-2.5-flash",
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "what is this?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        ]}],
    }
    resp = httpx.post(f"{gateway.base_url}/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {broke}"}, timeout=30)
    assert resp.status_code in (402, 429), resp.text
    assert "budget" in resp.json()["error"]["message"].lower()
    # With a budget, the same request gets as far as the media fetch, which is refused.
    rich = new_key()
    resp = httpx.post(f"{gateway.base_url}/v1/chat/completions", json=body,
                      headers={"authorization": f"Bearer {rich}"}, timeout=30)
    assert resp.status_code == 400 and "not fetched" in resp.text
