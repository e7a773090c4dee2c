"""OpenAI chat/completions <-> Gemini: field-by-field mapping, validation and streams."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gemgate.errors import InvalidArgument
from gemgate.translate import (
    ChatStreamDecoder,
    ChatStreamEncoder,
    chat_response_to_gemini,
    chat_to_gemini,
    gemini_to_chat,
    gemini_to_chat_response,
    schema_to_json_schema,
)

PNG = "iVBORw0KGgo="


def chat(**kw: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    body.update(kw)
    return body


def bad_field(fn: Any, *args: Any, **kw: Any) -> str:
    with pytest.raises(InvalidArgument) as info:
        fn(*args, **kw)
    assert info.value.param is not None
    return info.value.param


# ---------------------------------------------------------------- chat_to_gemini


def test_roles_system_joined_and_assistant_is_model() -> None:
    model, req = chat_to_gemini(
        chat(
            messages=[
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "be kind"}]},
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "bye"},
            ]
        )
    )
    assert model == "m"
    assert req["systemInstruction"] == {"parts": [{"text": "be brief\n\nbe kind"}]}
    assert req["contents"] == [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"text": "hello"}]},
        {"role": "user", "parts": [{"text": "bye"}]},
    ]
    assert "generationConfig" not in req


def test_tool_calls_and_results() -> None:
    _, req = chat_to_gemini(
        chat(
            messages=[
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "time", "arguments": ""},
                        },
                    ],
                },
                {"role": "tool", "tool_call_id": "call_a", "content": '{"temp": 21}'},
                {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
                {"role": "user", "content": "thanks"},
            ]
        )
    )
    assert req["contents"][1] == {
        "role": "model",
        "parts": [
            {"functionCall": {"id": "call_a", "name": "weather", "args": {"city": "Paris"}}},
            {"functionCall": {"id": "call_b", "name": "time", "args": {}}},
        ],
    }
    # consecutive tool messages become one user turn
    assert req["contents"][2] == {
        "role": "user",
        "parts": [
            {"functionResponse": {"id": "call_a", "name": "weather", "response": {"temp": 21}}},
            {"functionResponse": {"id": "call_b", "name": "time", "response": {"result": "noon"}}},
        ],
    }
    assert req["contents"][3] == {"role": "user", "parts": [{"text": "thanks"}]}


def test_json_array_tool_result_is_wrapped_as_text() -> None:
    _, req = chat_to_gemini(
        chat(
            messages=[
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "tool_call_id": "c",
                    "content": [{"type": "text", "text": "[1,2]"}],
                },
            ]
        )
    )
    assert req["contents"][1]["parts"][0]["functionResponse"]["response"] == {"result": "[1,2]"}


def test_thought_signature_round_trips_through_extra_content() -> None:
    call = {
        "id": "c",
        "type": "function",
        "function": {"name": "f", "arguments": "{}"},
        "extra_content": {"google": {"thought_signature": "c2ln"}},
    }
    _, req = chat_to_gemini(chat(messages=[{"role": "assistant", "tool_calls": [call]}]))
    part = req["contents"][0]["parts"][0]
    assert part["thoughtSignature"] == "c2ln"
    back = gemini_to_chat(req, model="m", stream=False)
    assert back["messages"][0]["tool_calls"][0]["extra_content"] == call["extra_content"]


def test_bad_arguments_name_the_field() -> None:
    body = chat(
        messages=[
            {"role": "user", "content": "x"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}
                ],
            },
        ]
    )
    assert bad_field(chat_to_gemini, body) == "messages[1].tool_calls[0].function.arguments"


def test_unknown_tool_call_id() -> None:
    body = chat(messages=[{"role": "tool", "tool_call_id": "nope", "content": "x"}])
    assert bad_field(chat_to_gemini, body) == "messages[0].tool_call_id"


def test_media_parts() -> None:
    _, req = chat_to_gemini(
        chat(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/cat.jpg"}},
                        {"type": "image_url", "image_url": {"url": "https://x.test/img?id=3"}},
                        {
                            "type": "input_audio",
                            "input_audio": {"data": "UklGRg==", "format": "wav"},
                        },
                        {
                            "type": "file",
                            "file": {
                                "filename": "a.pdf",
                                "file_data": "data:application/pdf;base64,JVBERi0=",
                            },
                        },
                    ],
                }
            ]
        )
    )
    assert req["contents"][0]["parts"] == [
        {"text": "look"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://x.test/cat.jpg"}},
        {"fileData": {"mimeType": "image/*", "fileUri": "https://x.test/img?id=3"}},
        {"inlineData": {"mimeType": "audio/wav", "data": "UklGRg=="}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}},
    ]


@pytest.mark.parametrize(
    ("messages", "path"),
    [
        ([], "messages"),
        ([{"role": "robot", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 3}], "messages[0].content"),
        (
            [{"role": "user", "content": [{"type": "video", "video": {}}]}],
            "messages[0].content[0].type",
        ),
        (
            [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}],
            "messages[0].content[0].image_url.url",
        ),
        (
            [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}],
            "messages[0].content[0].file.file_id",
        ),
        ([{"role": "user", "content": "x"}, "oops"], "messages[1]"),
        ([{"role": "function", "name": "f", "content": "x"}], "messages[0].role"),
    ],
)
def test_message_validation(messages: Any, path: str) -> None:
    assert bad_field(chat_to_gemini, chat(messages=messages)) == path


def test_parameters() -> None:
    _, req = chat_to_gemini(
        chat(
            max_tokens=10,
            max_completion_tokens=20,
            stop="END",
            n=2,
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            presence_penalty=0.1,
            frequency_penalty=0.2,
            seed=7,
            logprobs=True,
            top_logprobs=3,
            reasoning_effort="medium",
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "x",
                    "schema": {"type": "object", "additionalProperties": False},
                },
            },
            user="u",
            metadata={"a": "b"},
            store=False,
            stream=False,
            parallel_tool_calls=True,
        )
    )
    assert req["generationConfig"] == {
        "maxOutputTokens": 20,
        "stopSequences": ["END"],
        "candidateCount": 2,
        "temperature": 0.5,
        "topP": 0.9,
        "topK": 40,
        "presencePenalty": 0.1,
        "frequencyPenalty": 0.2,
        "seed": 7,
        "responseLogprobs": True,
        "logprobs": 3,
        "thinkingConfig": {"thinkingBudget": 8192},
        "responseMimeType": "application/json",
        "responseJsonSchema": {"type": "object", "additionalProperties": False},
    }


@pytest.mark.parametrize(
    ("effort", "budget"),
    [("none", 0), ("minimal", 0), ("low", 1024), ("medium", 8192), ("high", 24576)],
)
def test_reasoning_effort(effort: str, budget: int) -> None:
    _, req = chat_to_gemini(chat(reasoning_effort=effort))
    assert req["generationConfig"]["thinkingConfig"] == {"thinkingBudget": budget}


def test_json_object_and_max_tokens() -> None:
    _, req = chat_to_gemini(
        chat(max_tokens=5, response_format={"type": "json_object"}, stop=["a", "b"])
    )
    assert req["generationConfig"] == {
        "maxOutputTokens": 5,
        "responseMimeType": "application/json",
        "stopSequences": ["a", "b"],
    }


def test_tools_and_choices() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "weather",
                "description": "Weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                "strict": True,
            },
        }
    ]
    _, req = chat_to_gemini(chat(tools=tools, tool_choice="required"))
    assert req["tools"] == [
        {
            "functionDeclarations": [
                {
                    "name": "weather",
                    "description": "Weather",
                    "parametersJsonSchema": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                    },
                }
            ]
        }
    ]
    assert req["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    for choice, fcc in [
        ("auto", {"mode": "AUTO"}),
        ("none", {"mode": "NONE"}),
        (
            {"type": "function", "function": {"name": "weather"}},
            {"mode": "ANY", "allowedFunctionNames": ["weather"]},
        ),
    ]:
        _, req = chat_to_gemini(chat(tools=tools, tool_choice=choice))
        assert req["toolConfig"] == {"functionCallingConfig": fcc}


@pytest.mark.parametrize(
    ("extra", "path"),
    [
        ({"logit_bias": {"1": 5}}, "logit_bias"),
        ({"modalities": ["text", "audio"]}, "modalities[1]"),
        ({"audio": {"voice": "alloy", "format": "wav"}}, "audio"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"temperature": "hot"}, "temperature"),
        ({"n": 0}, "n"),
        ({"max_tokens": True}, "max_tokens"),
        ({"stop": [1]}, "stop"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"response_format": {"type": "yaml"}}, "response_format.type"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"model": ""}, "model"),
        ({"stream": "yes"}, "stream"),
    ],
)
def test_unsupported_or_invalid_parameters(extra: dict[str, Any], path: str) -> None:
    assert bad_field(chat_to_gemini, chat(**extra)) == path


def test_null_parameters_are_absent() -> None:
    _, req = chat_to_gemini(chat(temperature=None, logit_bias=None, tools=None, stop=None))
    assert "generationConfig" not in req and "tools" not in req


def test_image_output_modality() -> None:
    _, req = chat_to_gemini(chat(modalities=["text", "image"]))
    assert req["generationConfig"]["responseModalities"] == ["TEXT", "IMAGE"]


# ---------------------------------------------------------------- gemini_to_chat_response


def test_response_text_thoughts_tools_images_usage() -> None:
    resp = {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "thinking...", "thought": True},
                        {"text": "Hello "},
                        {"text": "world"},
                        {"inlineData": {"mimeType": "image/png", "data": PNG}},
                        {"functionCall": {"name": "f", "args": {"x": 1}}},
                        {"functionCall": {"id": "own", "name": "g", "args": {}}},
                    ],
                },
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 10,
            "candidatesTokenCount": 5,
            "toolUsePromptTokenCount": 2,
            "thoughtsTokenCount": 3,
            "cachedContentTokenCount": 4,
            "totalTokenCount": 20,
        },
    }
    out = gemini_to_chat_response(resp, model="gm", request_id="chatcmpl-1", created=123)
    ChatCompletion.model_validate(out)
    assert out["id"] == "chatcmpl-1" and out["object"] == "chat.completion"
    assert out["created"] == 123 and out["model"] == "gm"
    choice = out["choices"][0]
    msg = choice["message"]
    assert choice["finish_reason"] == "tool_calls"
    assert msg["content"] == "Hello world"
    assert msg["reasoning_content"] == "thinking..."
    assert msg["images"] == [
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    ]
    calls = msg["tool_calls"]
    assert calls[0]["id"].startswith("call_") and calls[1]["id"] == "own"
    assert calls[0]["function"] == {"name": "f", "arguments": '{"x":1}'}
    assert out["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 10,
        "total_tokens": 20,
        "prompt_tokens_details": {"cached_tokens": 4},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }


@pytest.mark.parametrize(
    ("reason", "finish"),
    [
        ("STOP", "stop"),
        ("MAX_TOKENS", "length"),
        ("SAFETY", "content_filter"),
        ("RECITATION", "content_filter"),
        ("BLOCKLIST", "content_filter"),
        ("PROHIBITED_CONTENT", "content_filter"),
        ("SPII", "content_filter"),
        ("IMAGE_SAFETY", "content_filter"),
        ("IMAGE_PROHIBITED_CONTENT", "content_filter"),
        ("MALFORMED_FUNCTION_CALL", "stop"),
        ("OTHER", "stop"),
    ],
)
def test_finish_reasons(reason: str, finish: str) -> None:
    resp = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    out = gemini_to_chat_response(resp, model="m", request_id="r", created=0)
    assert out["choices"][0]["finish_reason"] == finish


def test_blocked_prompt() -> None:
    resp = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 3}}
    out = gemini_to_chat_response(resp, model="m", request_id="r", created=0)
    ChatCompletion.model_validate(out)
    assert out["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": "content_filter",
        }
    ]


def test_several_candidates_and_logprobs() -> None:
    resp = {
        "candidates": [
            {
                "index": 0,
                "content": {"parts": [{"text": "a"}]},
                "finishReason": "STOP",
                "logprobsResult": {
                    "topCandidates": [{"candidates": [{"token": "a", "logProbability": -0.1}]}],
                    "chosenCandidates": [{"token": "a", "logProbability": -0.1}],
                },
            },
            {"index": 1, "content": {"parts": []}, "finishReason": "MAX_TOKENS"},
        ]
    }
    out = gemini_to_chat_response(resp, model="m", request_id="r", created=0)
    ChatCompletion.model_validate(out)
    assert [c["index"] for c in out["choices"]] == [0, 1]
    assert out["choices"][1]["message"]["content"] is None
    assert out["choices"][0]["logprobs"]["content"][0]["logprob"] == -0.1
    back = chat_response_to_gemini(out)
    assert back["candidates"][0]["logprobsResult"]["chosenCandidates"] == [
        {"token": "a", "logProbability": -0.1}
    ]


# ---------------------------------------------------------------- chat_response_to_gemini


def test_chat_response_to_gemini() -> None:
    resp = {
        "id": "chatcmpl-9",
        "model": "gpt-x",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "hi",
                    "reasoning_content": "hmm",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": '{"a":[1]}'},
                        }
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": 7,
            "completion_tokens": 9,
            "total_tokens": 16,
            "prompt_tokens_details": {"cached_tokens": 2},
            "completion_tokens_details": {"reasoning_tokens": 4},
        },
    }
    out = chat_response_to_gemini(resp)
    assert out == {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [
                        {"text": "hmm", "thought": True},
                        {"text": "hi"},
                        {"functionCall": {"name": "f", "args": {"a": [1]}, "id": "c1"}},
                    ],
                },
                "index": 0,
                "finishReason": "STOP",
            }
        ],
        "usageMetadata": {
            "promptTokenCount": 7,
            "candidatesTokenCount": 5,
            "totalTokenCount": 16,
            "cachedContentTokenCount": 2,
            "thoughtsTokenCount": 4,
        },
        "modelVersion": "gpt-x",
        "responseId": "chatcmpl-9",
    }


def test_malformed_upstream_arguments() -> None:
    resp = {
        "choices": [
            {
                "message": {
                    "content": None,
                    "tool_calls": [
                        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{"}}
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ]
    }
    cand = chat_response_to_gemini(resp)["candidates"][0]
    assert cand["finishReason"] == "MALFORMED_FUNCTION_CALL"
    assert cand["content"]["parts"] == []


# ---------------------------------------------------------------- gemini_to_chat


def test_gemini_to_chat_request() -> None:
    req = {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [
            {
                "role": "user",
                "parts": [
                    {"text": "hi"},
                    {"inlineData": {"mimeType": "image/png", "data": "iVBO-_w"}},
                ],
            },
            {
                "role": "model",
                "parts": [
                    {"text": "plan", "thought": True},
                    {"text": "ok"},
                    {"functionCall": {"name": "f", "args": {"q": 1}}},
                    {"functionCall": {"name": "f", "args": {"q": 2}}},
                ],
            },
            {
                "role": "user",
                "parts": [
                    {"functionResponse": {"name": "f", "response": {"r": 1}}},
                    {"functionResponse": {"name": "f", "response": {"r": 2}}},
                ],
            },
        ],
        "generationConfig": {
            "maxOutputTokens": 50,
            "temperature": 0.2,
            "topP": 0.8,
            "topK": 20,
            "stopSequences": ["x"],
            "candidateCount": 1,
            "seed": 3,
            "responseMimeType": "application/json",
            "responseSchema": {
                "type": "OBJECT",
                "properties": {"a": {"type": "STRING", "nullable": True}},
                "propertyOrdering": ["a"],
            },
            "thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": True},
        },
        "tools": [{"functionDeclarations": [{"name": "f", "parameters": {"type": "OBJECT"}}]}],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        "safetySettings": [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}],
    }
    body = gemini_to_chat(req, model="gpt-x", stream=True)
    assert body["model"] == "gpt-x"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    msgs = body["messages"]
    assert msgs[0] == {"role": "system", "content": "sys"}
    assert msgs[1] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "hi"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO+/w="}},
        ],
    }
    assert msgs[2]["content"] == "ok" and msgs[2]["reasoning_content"] == "plan"
    ids = [c["id"] for c in msgs[2]["tool_calls"]]
    assert ids == ["call_1_2", "call_1_3"]
    assert [json.loads(c["function"]["arguments"]) for c in msgs[2]["tool_calls"]] == [
        {"q": 1},
        {"q": 2},
    ]
    assert msgs[3] == {"role": "tool", "tool_call_id": "call_1_2", "content": '{"r": 1}'}
    assert msgs[4] == {"role": "tool", "tool_call_id": "call_1_3", "content": '{"r": 2}'}
    assert body["max_completion_tokens"] == 50 and body["top_k"] == 20 and body["stop"] == ["x"]
    assert body["reasoning_effort"] == "low"
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "response",
            "schema": {"type": "object", "properties": {"a": {"type": ["string", "null"]}}},
        },
    }
    assert body["tools"] == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    ]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "f"}}


@pytest.mark.parametrize(
    ("request_", "path"),
    [
        ({"contents": []}, "contents"),
        (
            {
                "contents": [
                    {
                        "role": "user",
                        "parts": [{"fileData": {"mimeType": "video/mp4", "fileUri": "gs://b/v"}}],
                    }
                ]
            },
            "contents[0].parts[0].fileData",
        ),
        (
            {
                "contents": [
                    {
                        "parts": [
                            {"text": "a"},
                            {"inlineData": {"mimeType": "video/mp4", "data": "AA"}},
                        ]
                    }
                ]
            },
            "contents[0].parts[1].inlineData.mimeType",
        ),
        (
            {"contents": [{"parts": [{"executableCode": {"code": "1"}}]}]},
            "contents[0].parts[0].executableCode",
        ),
        (
            {"contents": [{"parts": [{"text": "a"}]}], "tools": [{"googleSearch": {}}]},
            "tools[0].googleSearch",
        ),
        (
            {
                "contents": [{"parts": [{"text": "a"}]}],
                "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]},
            },
            "generationConfig.responseModalities",
        ),
        (
            {"contents": [{"parts": [{"text": "a"}]}], "generationConfig": {"speechConfig": {}}},
            "generationConfig.speechConfig",
        ),
        (
            {
                "contents": [{"parts": [{"text": "a"}]}],
                "safetySettings": [{"category": "X", "threshold": "BLOCK_LOW_AND_ABOVE"}],
            },
            "safetySettings[0].threshold",
        ),
        (
            {"contents": [{"parts": [{"text": "a"}]}], "cachedContent": "cachedContents/1"},
            "cachedContent",
        ),
        ({"contents": [{"role": "system", "parts": [{"text": "a"}]}]}, "contents[0].role"),
        (
            {"contents": [{"parts": [{"inlineData": {"mimeType": "audio/ogg", "data": "AA"}}]}]},
            "contents[0].parts[0].inlineData.mimeType",
        ),
    ],
)
def test_gemini_to_chat_rejects(request_: dict[str, Any], path: str) -> None:
    assert bad_field(gemini_to_chat, request_, model="m", stream=False) == path


def test_gemini_to_chat_function_calling_modes() -> None:
    base = {"contents": [{"parts": [{"text": "a"}]}]}
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"mode": "AUTO"}, "auto"),
        ({"mode": "NONE"}, "none"),
        ({"mode": "ANY"}, "required"),
        (
            {"mode": "ANY", "allowedFunctionNames": ["a", "b"]},
            {
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "required",
                    "tools": [
                        {"type": "function", "function": {"name": "a"}},
                        {"type": "function", "function": {"name": "b"}},
                    ],
                },
            },
        ),
    ]
    for fcc, choice in cases:
        body = gemini_to_chat(
            {**base, "toolConfig": {"functionCallingConfig": fcc}}, model="m", stream=False
        )
        assert body["tool_choice"] == choice
        back = chat_to_gemini(body)[1]
        assert back["toolConfig"]["functionCallingConfig"]["mode"] == fcc["mode"]


def test_schema_conversion() -> None:
    assert schema_to_json_schema(
        {
            "type": "ARRAY",
            "items": {"type": "INTEGER", "minimum": 1},
            "minItems": "2",
            "example": [1, 2],
        }
    ) == {
        "type": "array",
        "items": {"type": "integer", "minimum": 1},
        "minItems": 2,
        "examples": [[1, 2]],
    }


# ---------------------------------------------------------------- streams


def test_stream_encoder() -> None:
    enc = ChatStreamEncoder("gm", "chatcmpl-s", 5, include_usage=True)
    chunks: list[dict[str, Any]] = [
        {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": "think", "thought": True}]}}
            ]
        },
        {
            "candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}],
            "usageMetadata": {"promptTokenCount": 2},
        },
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]}}]},
        {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"functionCall": {"id": "c", "name": "f", "args": {"a": 1}}}],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 2,
                "candidatesTokenCount": 3,
                "thoughtsTokenCount": 1,
            },
        },
    ]
    out = [c for g in chunks for c in enc.feed(g)] + enc.finish()
    for c in out:
        ChatCompletionChunk.model_validate(c)
    deltas = [c["choices"][0]["delta"] for c in out if c["choices"]]
    assert deltas[0] == {"role": "assistant", "reasoning_content": "think"}
    assert deltas[1] == {"content": "Hel"} and deltas[2] == {"content": "lo"}
    assert deltas[3]["tool_calls"] == [
        {
            "index": 0,
            "id": "c",
            "type": "function",
            "function": {"name": "f", "arguments": '{"a":1}'},
        }
    ]
    assert out[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert out[-1]["choices"] == []
    assert out[-1]["usage"]["completion_tokens"] == 4 and out[-1]["usage"]["prompt_tokens"] == 2
    assert all(c["id"] == "chatcmpl-s" and c["object"] == "chat.completion.chunk" for c in out)


def test_stream_encoder_without_usage_and_blocked() -> None:
    enc = ChatStreamEncoder("gm", "r", 0)
    out = enc.feed({"promptFeedback": {"blockReason": "OTHER"}})
    assert out[0]["choices"][0]["finish_reason"] == "content_filter"
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert enc.finish() == []


def test_stream_encoder_role_on_finish_only_chunk() -> None:
    enc = ChatStreamEncoder("gm", "r", 0)
    out = enc.feed({"candidates": [{"content": {"parts": []}, "finishReason": "MAX_TOKENS"}]})
    assert out[0]["choices"][0] == {
        "index": 0,
        "delta": {"role": "assistant", "content": ""},
        "logprobs": None,
        "finish_reason": "length",
    }
    assert enc.feed({"candidates": [{"content": {"parts": []}}]}) == []


def _openai_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-u",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


def test_stream_decoder_text_immediately_tools_at_finish() -> None:
    dec = ChatStreamDecoder()
    assert dec.feed(_openai_chunk({"role": "assistant", "content": ""})) == []
    first = dec.feed(_openai_chunk({"content": "Hi"}))
    assert first[0]["candidates"][0]["content"]["parts"] == [{"text": "Hi"}]
    assert first[0]["responseId"] == "chatcmpl-u" and first[0]["modelVersion"] == "gpt-x"
    assert dec.feed(_openai_chunk({"reasoning_content": "r"}))[0]["candidates"][0]["content"][
        "parts"
    ] == [{"text": "r", "thought": True}]
    call = {"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": ""}}
    assert dec.feed(_openai_chunk({"tool_calls": [call]})) == []
    assert (
        dec.feed(_openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}))
        == []
    )
    assert (
        dec.feed(_openai_chunk({"tool_calls": [{"index": 0, "function": {"arguments": ":1}"}}]}))
        == []
    )
    # the finish is held for one event so that the usage rides with it
    assert dec.feed(_openai_chunk({}, "tool_calls")) == []
    usage = {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}
    last = dec.feed({"id": "chatcmpl-u", "model": "gpt-x", "choices": [], "usage": usage})
    assert len(last) == 1
    cand = last[0]["candidates"][0]
    assert cand["finishReason"] == "STOP"
    assert cand["content"]["parts"] == [
        {"functionCall": {"name": "f", "args": {"a": 1}, "id": "c1"}}
    ]
    assert last[0]["usageMetadata"] == {
        "promptTokenCount": 3,
        "candidatesTokenCount": 4,
        "totalTokenCount": 7,
    }
    assert dec.finish() == []


def test_stream_decoder_finish_flushes_held_and_truncated() -> None:
    dec = ChatStreamDecoder()
    assert dec.feed(_openai_chunk({"content": "a"}, "stop")) == []
    out = dec.finish()
    assert out[0]["candidates"][0]["finishReason"] == "STOP"
    dec = ChatStreamDecoder()
    dec.feed(
        _openai_chunk(
            {"tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{}"}}]}
        )
    )
    out = dec.finish()
    assert out[0]["candidates"][0]["content"]["parts"][0]["functionCall"]["name"] == "f"


def test_stream_decoder_ignores_null_usage_and_next_content_releases_hold() -> None:
    dec = ChatStreamDecoder()
    out = dec.feed({**_openai_chunk({"content": "x"}), "usage": None})
    assert "usageMetadata" not in out[0]
    two = {
        "id": "i",
        "choices": [
            {"index": 0, "delta": {}, "finish_reason": "stop"},
        ],
    }
    assert dec.feed(two) == []
    nxt = dec.feed(
        {"id": "i", "choices": [{"index": 1, "delta": {"content": "y"}, "finish_reason": None}]}
    )
    assert [c["candidates"][0]["index"] for c in nxt] == [0, 1]
