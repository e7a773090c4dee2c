"""``anthropic-beta`` and ``anthropic-version`` from an Anthropic client reach an Anthropic
upstream with the client's bytes (unary and streamed), and no other client header does;
a request translated for another upstream carries neither."""

from __future__ import annotations

import anthropic
from tests.doors.anthropic_gateway import ANTHROPIC_KEY
from tests.fakes.anthropic_upstream import FakeAnthropic
from tests.fakes.gemini_upstream import FakeGemini

BETAS = ["context-management-2025-06-27", "interleaved-thinking-2025-05-14"]
CLIENT_ONLY = {"x-client-secret": "do-not-forward", "x-stainless-retry-count": "0", "cookie": "a=b"}


def _forwarded(fake: FakeAnthropic) -> dict[str, str]:
    return fake.requests[-1].headers


def test_betas_travel_with_the_clients_bytes(client: anthropic.Anthropic, fake_anthropic: FakeAnthropic,
                                             akey: str) -> None:
    client.beta.messages.create(model="claude-test", max_tokens=20, betas=BETAS,
                                messages=[{"role": "user", "content": "hi"}], extra_headers=CLIENT_ONLY)
    got = _forwarded(fake_anthropic)
    assert got["anthropic-beta"] == ",".join(BETAS)
    assert got["anthropic-version"] == client.default_headers["anthropic-version"]  # the SDK's own
    assert got["x-api-key"] == ANTHROPIC_KEY  # the upstream's key, never the client's
    assert akey not in str(got)
    assert not set(CLIENT_ONLY) & set(got)
    assert not any(k.startswith("x-stainless") for k in got)  # the SDK's own headers stay behind


def test_streamed_and_a_clients_version(client: anthropic.Anthropic, fake_anthropic: FakeAnthropic) -> None:
    with client.messages.stream(model="claude-sonnet-4-6", max_tokens=20,
                                messages=[{"role": "user", "content": "hi there"}],
                                extra_headers={"anthropic-beta": BETAS[0], "anthropic-version": "2023-01-01"}) as s:
        assert s.get_final_text() == "echo: hi there"
    got = _forwarded(fake_anthropic)
    assert got["anthropic-beta"] == BETAS[0] and got["anthropic-version"] == "2023-01-01"


def test_no_beta_when_the_client_sends_none(client: anthropic.Anthropic, fake_anthropic: FakeAnthropic) -> None:
    client.messages.create(model="claude-test", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    got = _forwarded(fake_anthropic)
    assert "anthropic-beta" not in got and got["anthropic-version"] == client.default_headers["anthropic-version"]


def test_translated_requests_carry_no_client_headers(client: anthropic.Anthropic, fake_google: FakeGemini) -> None:
    client.beta.messages.create(model="gemini-2.5-flash", max_tokens=20, betas=BETAS,
                                messages=[{"role": "user", "content": "hi"}])
    got = fake_google.requests[-1].headers
    assert "anthropic-beta" not in got and "anthropic-version" not in got
