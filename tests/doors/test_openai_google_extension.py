"""Code written for Google's OpenAI-compatible endpoint, unchanged, against the OpenAI door:
the ``google`` extension block (as Google documents it with the openai SDK,
``extra_body={"extra_body": {"google": ...}}``, and the flat ``extra_body={"google": ...}``)
reaches Gemini as thinkingConfig, cachedContent (a cache made on the gateway), safetySettings
and thought tags; anything else in it is refused naming the field, in OpenAI's envelope."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from google import genai
from google.genai import types
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

MODEL = "gemini-2.5-flash"
BOOK = " ".join(f"word{i}" for i in range(1100))  # over the fake's minimum cache size


@pytest.fixture
def oa(gateway: GatewayProcess, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(api_key=api_key, base_url=gateway.base_url + "/v1", max_retries=0)


def sent(fake: FakeGemini) -> dict[str, Any]:
    body = [r for r in fake.requests if r.rpc in ("generateContent", "streamGenerateContent")][-1].json
    assert isinstance(body, dict)
    return body


def ask(oa: openai.OpenAI, extra_body: dict[str, Any], **kw: Any) -> Any:
    return oa.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], extra_body=extra_body, **kw)


def test_thinking_config_as_google_documents_it(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    ask(oa, {"extra_body": {"google": {"thinking_config": {"thinking_budget": 512, "include_thoughts": True}}}})
    assert sent(fake_google)["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 512, "includeThoughts": True}
    ask(oa, {"google": {"thinking_config": {"thinking_level": "low"}}})  # the flat form
    assert sent(fake_google)["generationConfig"]["thinkingConfig"] == {"thinkingLevel": "LOW"}
    ask(oa, {"google": {"thinkingConfig": {"includeThoughts": True}}}, reasoning_effort="high")
    assert sent(fake_google)["generationConfig"]["thinkingConfig"] == {"thinkingBudget": 24576, "includeThoughts": True}


def test_cached_content_names_a_gateway_cache(
    oa: openai.OpenAI, gateway: GatewayProcess, api_key: str, fake_google: FakeGemini
) -> None:
    g = genai.Client(api_key=api_key, http_options={"api_version": "v1beta", "base_url": gateway.base_url + "/gemini"})
    cache = g.caches.create(model=MODEL, config=types.CreateCachedContentConfig(
        contents=[types.Content(role="user", parts=[types.Part(text=BOOK)])], ttl="300s"))
    assert cache.name
    [upstream] = fake_google.caches.values()
    reply = ask(oa, {"extra_body": {"google": {"cached_content": cache.name}}})
    assert sent(fake_google)["cachedContent"] == upstream["name"]  # resolved to the upstream's copy
    assert reply.usage.prompt_tokens_details.cached_tokens == 1100  # the cache's tokens, billed as cached
    with pytest.raises(openai.PermissionDeniedError):  # another key's cache is not yours
        other = openai.OpenAI(api_key=gateway.create_key("not-the-owner"), base_url=gateway.base_url + "/v1",
                              max_retries=0)
        ask(other, {"google": {"cached_content": cache.name}})


def test_safety_settings(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    ask(oa, {"google": {"safety_settings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]}})
    assert sent(fake_google)["safetySettings"] == [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]


def test_thought_tag_marker(oa: openai.OpenAI, fake_google: FakeGemini) -> None:
    parts = [{"text": "pondering", "thought": True}, {"text": "the answer"}]
    fake_google.script(MODEL, {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]})
    google = {"google": {"thinking_config": {"include_thoughts": True}, "thought_tag_marker": "think"}}
    reply = ask(oa, google)
    assert reply.choices[0].message.content == "<think>pondering</think>the answer"
    fake_google.script(MODEL, stream=[
        {"candidates": [{"content": {"role": "model", "parts": parts[:1]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": parts[1:]}, "finishReason": "STOP", "index": 0}]},
    ])
    chunks = list(ask(oa, google, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "<think>pondering</think>the answer"
    # the tagged thought goes back to the model as its thought
    oa.chat.completions.create(model=MODEL, extra_body=google, messages=[
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>pondering</think>the answer"},
        {"role": "user", "content": "and?"}])
    assert sent(fake_google)["contents"][1]["parts"] == [{"text": "pondering", "thought": True}, {"text": "the answer"}]


@pytest.mark.parametrize(("extra", "param"), [
    ({"extra_body": {"google": {"frobnicate": 1}}}, "extra_body.google.frobnicate"),
    ({"google": {"thinking_config": {"thinking_budgett": 5}}}, "google.thinking_config.thinking_budgett"),
    ({"google": {"thinking_config": {"thinking_level": "extreme"}}}, "google.thinking_config.thinking_level"),
    ({"extra_body": {"openai": {}}}, "extra_body.openai"),
    ({"google": {"cached_content": 7}}, "google.cached_content"),
    ({"google": {"safety_settings": [{"category": "HARM_CATEGORY_X", "threshold": "OFF"}]}},
     "google.safety_settings[0].category"),
    ({"google": []}, "google"),
])
def test_bad_extension_is_refused_naming_the_field(oa: openai.OpenAI, fake_google: FakeGemini,
                                                   extra: dict[str, Any], param: str) -> None:
    before = len(fake_google.requests)
    with pytest.raises(openai.BadRequestError) as err:
        ask(oa, extra)
    body = err.value.body
    assert isinstance(body, dict) and body["param"] == param and body["type"] == "invalid_request_error"
    assert param in body["message"]
    assert len(fake_google.requests) == before  # never sent upstream


def test_reasoning_effort_and_a_budget_together_are_refused(oa: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        ask(oa, {"google": {"thinking_config": {"thinking_budget": 100}}}, reasoning_effort="low")
    assert isinstance(err.value.body, dict) and err.value.body["param"] == "google.thinking_config"
