"""Checks that the fake Gemini upstream speaks Google's wire protocol."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import errors, types

from .gemini_upstream import FakeGemini

KEY = "upstream-secret-key"
FLASH = "gemini-2.5-flash"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello big world"}]}]}


@pytest.fixture(scope="module")
def server() -> Iterator[FakeGemini]:
    with FakeGemini(KEY) as fake:
        yield fake


@pytest.fixture
def fake(server: FakeGemini) -> Iterator[FakeGemini]:
    server.reset()
    yield server
    server.reset()


@pytest.fixture
def http(fake: FakeGemini) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fake.base_url, headers={"x-goog-api-key": KEY}, timeout=10) as c:
        yield c


@pytest.fixture
def sdk(fake: FakeGemini) -> genai.Client:
    return genai.Client(api_key=KEY,
                        http_options={"api_version": "v1beta", "base_url": fake.base_url})


def _url(model: str = FLASH, rpc: str = "generateContent", version: str = "v1beta") -> str:
    return f"/{version}/models/{model}:{rpc}"


def _sse_events(text: str) -> list[dict[str, Any]]:
    assert text.endswith("\r\n\r\n")
    frames = text.split("\r\n\r\n")[:-1]
    assert all(f.startswith("data: ") for f in frames)
    return [json.loads(f[len("data: "):]) for f in frames]


def _chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    cand: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finish:
        cand["finishReason"] = finish
    return {"candidates": [cand], "modelVersion": FLASH}


# -- auth and errors ---------------------------------------------------------------------------
def test_missing_key_is_403_permission_denied(fake: FakeGemini) -> None:
    r = httpx.post(fake.base_url + _url(), json=HELLO)
    assert r.status_code == 403
    assert r.json()["error"]["status"] == "PERMISSION_DENIED"
    assert r.json()["error"]["code"] == 403


def test_wrong_key_is_400_api_key_invalid(fake: FakeGemini) -> None:
    r = httpx.post(fake.base_url + _url(), json=HELLO, headers={"x-goog-api-key": "nope"})
    err = r.json()["error"]
    assert r.status_code == 400 and err["status"] == "INVALID_ARGUMENT"
    assert err["details"][0]["reason"] == "API_KEY_INVALID"
    assert "API key not valid" in err["message"]


def test_query_key_and_v1_and_percent_encoded_colon(fake: FakeGemini) -> None:
    for path in (_url(version="v1"), f"/v1beta/models/{FLASH}%3AgenerateContent"):
        r = httpx.post(fake.base_url + path, params={"key": KEY}, json=HELLO)
        assert r.status_code == 200, r.text
    assert fake.requests[-1].rpc == "generateContent"
    assert fake.requests[-1].raw_path.endswith("%3AgenerateContent")


def test_unknown_model_and_unsupported_method_are_404(http: httpx.Client) -> None:
    r = http.post(_url("gemini-nope"), json=HELLO)
    assert r.status_code == 404 and r.json()["error"]["status"] == "NOT_FOUND"
    assert "models/gemini-nope is not found" in r.json()["error"]["message"]
    assert http.post(_url("text-embedding-004"), json=HELLO).status_code == 404
    assert http.post(_url(rpc="fooBar"), json=HELLO).status_code == 404


def test_bad_json_unknown_field_and_empty_contents_are_400(http: httpx.Client) -> None:
    r = http.post(_url(), content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    r = http.post(_url(), json={**HELLO, "bogus": 1})
    assert r.status_code == 400 and 'Unknown name "bogus"' in r.json()["error"]["message"]
    assert http.post(_url(), json={"contents": []}).status_code == 400
    # proto3 JSON: snake_case is accepted next to camelCase
    ok = {**HELLO, "generation_config": {"max_output_tokens": 2}, "systemInstruction": {}}
    assert http.post(_url(), json=ok).status_code == 200


def test_model_with_slash(fake: FakeGemini, http: httpx.Client) -> None:
    fake.add_model("google/gemini-3.1-flash-lite-preview")
    r = http.post(_url("google/gemini-3.1-flash-lite-preview"), json=HELLO)
    assert r.status_code == 200
    assert r.json()["modelVersion"] == "google/gemini-3.1-flash-lite-preview"
    assert http.get("/v1beta/models/google/gemini-3.1-flash-lite-preview").status_code == 200


# -- default answers ---------------------------------------------------------------------------
def test_default_generate_echoes_with_usage(http: httpx.Client) -> None:
    body = {**HELLO, "systemInstruction": {"parts": [{"text": "be nice"}]}}
    data = http.post(_url(), json=body).json()
    cand = data["candidates"][0]
    assert cand["content"] == {"parts": [{"text": "echo: hello big world"}], "role": "model"}
    assert cand["finishReason"] == "STOP"
    usage = data["usageMetadata"]
    assert usage["promptTokenCount"] == 5 and usage["candidatesTokenCount"] == 4
    assert usage["totalTokenCount"] == 9
    assert usage["candidatesTokensDetails"] == [{"modality": "TEXT", "tokenCount": 4}]
    assert data["modelVersion"] == FLASH and data["responseId"]


def test_max_output_tokens_truncates(http: httpx.Client) -> None:
    body = {**HELLO, "generationConfig": {"maxOutputTokens": 2}}
    cand = http.post(_url(), json=body).json()["candidates"][0]
    assert cand["content"]["parts"][0]["text"] == "echo: hello"
    assert cand["finishReason"] == "MAX_TOKENS"


def test_sse_stream_one_event_per_word_with_cumulative_usage(http: httpx.Client) -> None:
    r = http.post(_url(rpc="streamGenerateContent"), params={"alt": "sse"}, json=HELLO)
    assert r.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(r.text)
    assert len(events) == 4
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == (
        "echo: hello big world")
    assert [e["usageMetadata"]["candidatesTokenCount"] for e in events] == [1, 2, 3, 4]
    assert {e["usageMetadata"]["promptTokenCount"] for e in events} == {3}
    assert [e["candidates"][0].get("finishReason") for e in events] == [None] * 3 + ["STOP"]
    assert len({e["responseId"] for e in events}) == 1


def test_json_array_stream(http: httpx.Client) -> None:
    r = http.post(_url(rpc="streamGenerateContent"), json=HELLO)
    assert r.text.startswith("[{") and r.text.endswith("]") and ",\r\n" in r.text
    assert len(json.loads(r.text)) == 4


def test_image_model_returns_inline_png(http: httpx.Client) -> None:
    body = {**HELLO, "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}
    data = http.post(_url("gemini-2.5-flash-image"), json=body).json()
    parts = data["candidates"][0]["content"]["parts"]
    assert parts[-1]["inlineData"]["mimeType"] == "image/png"
    modalities = [d["modality"] for d in data["usageMetadata"]["candidatesTokensDetails"]]
    assert modalities == ["TEXT", "IMAGE"]


def test_count_tokens_and_embeddings(http: httpx.Client) -> None:
    assert http.post(_url(rpc="countTokens"), json=HELLO).json()["totalTokens"] == 3
    wrapped = {"generateContentRequest": {"model": f"models/{FLASH}", **HELLO}}
    assert http.post(_url(rpc="countTokens"), json=wrapped).json()["totalTokens"] == 3
    emb = "text-embedding-004"
    content = {"parts": [{"text": "hi"}]}
    one = http.post(_url(emb, "embedContent"), json={"content": content}).json()
    assert len(one["embedding"]["values"]) == 8
    batch = {"requests": [{"model": f"models/{emb}", "content": content}] * 2}
    many = http.post(_url(emb, "batchEmbedContents"), json=batch).json()["embeddings"]
    assert many == [one["embedding"]] * 2
    bad = {"requests": [{"model": "models/gemini-embedding-001", "content": content}]}
    r = http.post(_url(emb, "batchEmbedContents"), json=bad)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_model_list_pagination_and_get(http: httpx.Client) -> None:
    names: list[str] = []
    token = None
    while True:
        page = http.get("/v1beta/models", params={"pageSize": 2, "pageToken": token or ""}).json()
        names += [m["name"] for m in page["models"]]
        token = page.get("nextPageToken")
        if not token:
            break
    assert "models/gemini-2.5-pro" in names and len(names) == len(set(names)) == 5
    info = http.get(f"/v1beta/models/{FLASH}").json()
    assert info["name"] == f"models/{FLASH}" and info["baseModelId"] == FLASH
    assert "generateContent" in info["supportedGenerationMethods"]
    assert http.get("/v1beta/models/nope").status_code == 404


# -- scripting ---------------------------------------------------------------------------------
def test_scripts_are_fifo_then_default(fake: FakeGemini, http: httpx.Client) -> None:
    fake.script(FLASH, _chunk("first", "STOP"))
    fake.script(FLASH, status=429, headers={"Retry-After": "7"})
    fake.script(FLASH, error={"code": 503, "message": "busy", "status": "UNAVAILABLE"})
    assert http.post(_url(), json=HELLO).json()["candidates"][0]["content"]["parts"][0][
        "text"] == "first"
    r = http.post(_url(), json=HELLO)
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    r = http.post(_url(), json=HELLO)
    assert r.status_code == 503 and r.json()["error"]["message"] == "busy"
    assert http.post(_url(), json=HELLO).json()["candidates"][0]["finishReason"] == "STOP"


def test_script_method_filter_and_merge(fake: FakeGemini, http: httpx.Client) -> None:
    fake.script(FLASH, {"totalTokens": 42}, method="countTokens")
    fake.script(FLASH, stream=[_chunk("a"), _chunk("b", "STOP")])
    text = http.post(_url(), json=HELLO).json()["candidates"][0]["content"]["parts"]
    assert text == [{"text": "ab"}]
    assert http.post(_url(rpc="countTokens"), json=HELLO).json() == {"totalTokens": 42}


def test_scripted_stream_error_shapes(fake: FakeGemini, http: httpx.Client) -> None:
    fake.script(FLASH, status=500)
    r = http.post(_url(rpc="streamGenerateContent"), json=HELLO)
    assert r.status_code == 500 and r.json()[0]["error"]["status"] == "INTERNAL"
    fake.script(FLASH, stream=[_chunk("a"), {"error": {"code": 500, "message": "boom"}}])
    events = _sse_events(http.post(_url(rpc="streamGenerateContent"), params={"alt": "sse"},
                                   json=HELLO).text)
    assert list(events[1]) == ["error"]


def test_cut_after_aborts_mid_stream(fake: FakeGemini, http: httpx.Client) -> None:
    fake.script(FLASH, cut_after=2)
    got: list[str] = []
    with pytest.raises(httpx.RemoteProtocolError), http.stream(
            "POST", _url(rpc="streamGenerateContent"), params={"alt": "sse"}, json=HELLO) as r:
        for line in r.iter_lines():
            if line:
                got.append(line)
    assert len(got) == 2
    fake.script(FLASH, cut_after=0)
    with pytest.raises(httpx.TransportError):
        http.post(_url(), json=HELLO)
    assert fake.disconnects == 0


def test_hold_stream_proves_incremental_delivery(fake: FakeGemini, http: httpx.Client) -> None:
    gate = fake.hold_stream(FLASH, first_events=1)
    with http.stream("POST", _url(rpc="streamGenerateContent"), params={"alt": "sse"},
                     json=HELLO) as r:
        lines = r.iter_lines()
        first = next(lines)
        assert first.startswith("data: ") and gate.reached.is_set() and not gate.released
        gate.release()
        rest = [line for line in lines if line]
    assert len(rest) == 3
    assert fake.disconnects == 0


def test_client_going_away_is_counted(fake: FakeGemini, http: httpx.Client) -> None:
    gate = fake.hold_stream(FLASH)
    with http.stream("POST", _url(rpc="streamGenerateContent"), params={"alt": "sse"},
                     json=HELLO) as r:
        next(r.iter_lines())
    assert gate.reached.is_set()
    assert fake.wait_disconnects(1, timeout=5)
    fake.script(FLASH, stream=[_chunk(str(i)) for i in range(50)], event_delay=0.02)
    with http.stream("POST", _url(rpc="streamGenerateContent"), params={"alt": "sse"},
                     json=HELLO) as r:
        next(r.iter_lines())
    assert fake.wait_disconnects(2, timeout=5)


def test_delays_and_recording(fake: FakeGemini, http: httpx.Client) -> None:
    fake.set_delay(0.2)
    fake.script(FLASH, delay=0.1)
    start = time.monotonic()
    http.post(_url(), json=HELLO, headers={"X-Trace": "t1"})
    assert time.monotonic() - start >= 0.3
    rec = fake.requests[-1]
    assert rec.method == "POST" and rec.path == _url() and rec.json == HELLO
    assert rec.headers["x-trace"] == "t1" and rec.model == FLASH
    assert json.loads(rec.body) == HELLO
    fake.clear()
    assert fake.requests == []


def test_script_rejects_unknown_model(fake: FakeGemini) -> None:
    with pytest.raises(ValueError):
        fake.script("gemini-nope", status=500)


# -- the google-genai SDK against the fake -----------------------------------------------------
def test_sdk_generate_and_stream(sdk: genai.Client) -> None:
    resp = sdk.models.generate_content(model=FLASH, contents="hello big world")
    assert resp.text == "echo: hello big world"
    assert resp.usage_metadata is not None and resp.usage_metadata.prompt_token_count == 3
    chunks = list(sdk.models.generate_content_stream(model=FLASH, contents="one two three"))
    assert len(chunks) == 4
    assert "".join(c.text or "" for c in chunks) == "echo: one two three"
    last = chunks[-1]
    assert last.usage_metadata is not None and last.usage_metadata.candidates_token_count == 4
    assert last.candidates and last.candidates[0].finish_reason == types.FinishReason.STOP


def test_sdk_count_embed_list(sdk: genai.Client) -> None:
    assert sdk.models.count_tokens(model=FLASH, contents="a b c d").total_tokens == 4
    emb = sdk.models.embed_content(model="text-embedding-004", contents=["x", "y"])
    assert emb.embeddings is not None and len(emb.embeddings) == 2
    assert all(len(e.values or []) == 8 for e in emb.embeddings)
    names = [m.name for m in sdk.models.list(config={"page_size": 2})]
    assert f"models/{FLASH}" in names and len(names) == 5


def test_sdk_errors(fake: FakeGemini, sdk: genai.Client) -> None:
    bad = genai.Client(api_key="wrong",
                       http_options={"api_version": "v1beta", "base_url": fake.base_url})
    with pytest.raises(errors.ClientError) as exc:
        bad.models.generate_content(model=FLASH, contents="hi")
    assert exc.value.code == 400 and exc.value.status == "INVALID_ARGUMENT"
    fake.script(FLASH, status=503)
    with pytest.raises(errors.ServerError):
        sdk.models.generate_content(model=FLASH, contents="hi")
    fake.script(FLASH, stream=[_chunk("a"), {"error": {"code": 500, "message": "boom",
                                                       "status": "INTERNAL"}}])
    with pytest.raises(errors.APIError):
        list(sdk.models.generate_content_stream(model=FLASH, contents="hi"))
