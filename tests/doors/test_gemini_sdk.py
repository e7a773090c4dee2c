"""The official google-genai SDK, unchanged, against the gateway: fake Google and local model."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess


def client(
    gw: GatewayProcess, key: str, prefix: str = "/gemini", api_version: str | None = "v1beta"
) -> genai.Client:
    options: dict[str, str] = {"base_url": gw.base_url + prefix}
    if api_version is not None:
        options["api_version"] = api_version
    return genai.Client(api_key=key, http_options=options)  # type: ignore[arg-type]


# v1beta under the /gemini prefix, and the SDK's own default (v1 since google-genai 3.x)
# with no prefix.
@pytest.fixture(params=[("/gemini", "v1beta"), ("", None)], ids=["gemini-v1beta", "default-v1"])
def sdk(request: pytest.FixtureRequest, gateway: GatewayProcess, api_key: str) -> genai.Client:
    prefix, version = request.param
    return client(gateway, api_key, prefix, version)


# --- through the fake Google upstream ------------------------------------------------------


def test_generate(sdk: genai.Client, fake_google: FakeGemini) -> None:
    resp = sdk.models.generate_content(
        model="google/gemini-2.5-flash",
        contents="hello from the sdk",
        config=types.GenerateContentConfig(system_instruction="be nice", temperature=0.3),
    )
    assert resp.text == "echo: hello from the sdk"
    assert resp.usage_metadata is not None
    assert resp.usage_metadata.prompt_token_count and resp.usage_metadata.candidates_token_count
    sent = fake_google.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.json is not None and sent.json["generationConfig"]["temperature"] == 0.3


def test_stream(sdk: genai.Client) -> None:
    chunks = list(
        sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="one two three four")
    )
    assert len(chunks) > 2
    assert "".join(c.text or "" for c in chunks) == "echo: one two three four"
    assert chunks[-1].candidates and chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    # usage is cumulative on every chunk
    counts = [c.usage_metadata.candidates_token_count for c in chunks if c.usage_metadata]
    assert counts == sorted(counts) and counts[-1] == 5


def test_stream_error_before_first_event(sdk: genai.Client, fake_google: FakeGemini) -> None:
    fake_google.script("gemini-2.5-flash", status=400, error={"code": 400, "message": "bad image", "status": "INVALID_ARGUMENT"})
    with pytest.raises(errors.ClientError) as info:
        list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="x"))
    assert info.value.code == 400


def test_stream_error_mid_stream(sdk: genai.Client, fake_google: FakeGemini) -> None:
    events = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "partial"}]}}],
         "usageMetadata": {"promptTokenCount": 2, "candidatesTokenCount": 1, "totalTokenCount": 3}},
    ]
    fake_google.script("gemini-2.5-flash", stream=events, cut_after=1)
    with pytest.raises(errors.APIError):
        for _ in sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="x"):
            pass


def test_count_tokens_is_local(sdk: genai.Client, fake_google: FakeGemini) -> None:
    resp = sdk.models.count_tokens(model="gemini-2.5-flash", contents="The quick brown fox jumps.")
    assert resp.total_tokens is not None and 4 <= resp.total_tokens <= 10
    assert not any(r.rpc == "countTokens" for r in fake_google.requests)


def test_models_list_and_get(sdk: genai.Client) -> None:
    names = [m.name for m in sdk.models.list(config={"page_size": 2})]
    assert "models/google/gemini-2.5-flash" in names and "models/gemma-3-270m" in names
    model = sdk.models.get(model="google/gemini-2.5-flash")
    assert model.display_name and model.input_token_limit == 1048576


def test_embed_content(sdk: genai.Client, fake_google: FakeGemini) -> None:
    resp = sdk.models.embed_content(model="gemini-embedding-001", contents=["alpha", "beta"])
    assert resp.embeddings is not None and len(resp.embeddings) == 2
    assert all(e.values for e in resp.embeddings)
    sent = fake_google.requests[-1]
    assert sent.json is not None
    assert {r["model"] for r in sent.json["requests"]} == {"models/gemini-embedding-001"}


def test_function_call_passthrough(sdk: genai.Client, fake_google: FakeGemini) -> None:
    fake_google.script(
        "gemini-2.5-flash",
        {
            "candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris", "Unit_Name": "C"}}},
            ]}, "finishReason": "STOP"}],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        },
    )
    tool = types.Tool(function_declarations=[types.FunctionDeclaration(
        name="get_weather", description="weather", parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    )])
    resp = sdk.models.generate_content(
        model="gemini-2.5-flash", contents="weather in Paris?", config=types.GenerateContentConfig(tools=[tool])
    )
    assert resp.function_calls and resp.function_calls[0].args == {"city": "Paris", "Unit_Name": "C"}


def test_bad_key_raises_client_error(gateway: GatewayProcess) -> None:
    bad = client(gateway, "gg-wrong")
    with pytest.raises(errors.ClientError) as info:
        bad.models.generate_content(model="gemini-2.5-flash", contents="x")
    assert info.value.code == 400
    assert "API key not valid" in str(info.value)


def test_unknown_model_raises_not_found(sdk: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        sdk.models.generate_content(model="gemini-9", contents="x")
    assert info.value.code == 404


# --- the local model -----------------------------------------------------------------------


def test_local_generate(sdk: genai.Client) -> None:
    resp = sdk.models.generate_content(
        model="gemma-3-270m",
        contents="What is the capital of France? Answer in one word.",
        config=types.GenerateContentConfig(max_output_tokens=8, temperature=0, seed=1),
    )
    assert resp.text
    usage = resp.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.candidates_token_count <= 8
    assert resp.candidates and resp.candidates[0].finish_reason in (types.FinishReason.STOP, types.FinishReason.MAX_TOKENS)


def test_local_stream_matches_generate(sdk: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=12, temperature=0, seed=7)
    prompt = "List three colours."
    whole = sdk.models.generate_content(model="gemma-3-270m", contents=prompt, config=config)
    chunks = list(sdk.models.generate_content_stream(model="gemma-3-270m", contents=prompt, config=config))
    assert len(chunks) > 1
    assert "".join(c.text or "" for c in chunks) == whole.text
    assert chunks[-1].usage_metadata is not None and whole.usage_metadata is not None
    assert chunks[-1].usage_metadata.candidates_token_count == whole.usage_metadata.candidates_token_count


def test_local_multiturn_and_max_tokens(sdk: genai.Client) -> None:
    resp = sdk.models.generate_content(
        model="gemma-3-270m",
        contents=[
            types.Content(role="user", parts=[types.Part(text="My name is Ada.")]),
            types.Content(role="model", parts=[types.Part(text="Nice to meet you, Ada.")]),
            types.Content(role="user", parts=[types.Part(text="Write a long story about my name.")]),
        ],
        config=types.GenerateContentConfig(max_output_tokens=5, system_instruction="You are terse."),
    )
    assert resp.candidates and resp.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert resp.usage_metadata is not None and resp.usage_metadata.candidates_token_count == 5


def test_local_rejects_image_part(sdk: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        sdk.models.generate_content(
            model="gemma-3-270m",
            contents=[types.Content(role="user", parts=[
                types.Part(text="what is this"),
                types.Part.from_bytes(data=b"\x89PNG\r\n\x1a\n....", mime_type="image/png"),
            ])],
        )
    assert info.value.code == 400
    assert "contents[0].parts[1].inlineData" in str(info.value)


def test_local_embed(sdk: genai.Client) -> None:
    resp = sdk.models.embed_content(model="gemma-3-270m", contents=["cats", "dogs"])
    assert resp.embeddings is not None and len(resp.embeddings) == 2
    dims = {len(e.values or []) for e in resp.embeddings}
    assert len(dims) == 1 and dims.pop() > 100


def test_local_count_tokens(sdk: genai.Client) -> None:
    resp = sdk.models.count_tokens(model="gemma-3-270m", contents="Hello world")
    assert resp.total_tokens == 2
