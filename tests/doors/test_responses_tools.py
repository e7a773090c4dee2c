"""The Responses door's tools, through the official openai SDK against a real gateway and the
fake Gemini upstream: Codex's ``namespace`` tool flattened into declarations and its calls
named back, ``custom`` tools (free-form input with a grammar) as ``custom_tool_call`` items
unary and streamed, ``allowed_tools`` narrowing the declarations, built-in tools next to
functions on a model that takes the mix, Google Search grounding as ``web_search_call`` and
``url_citation`` annotations, ``/v1/responses/compact``, and ``previous_response_not_found``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from tests.conftest import UPSTREAM_KEY
from tests.doors.anthropic_gateway import record
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

CONFIG = """
[server]
host = "127.0.0.1"
port = {PORT}

[database]
url = "sqlite:///{DIR}/gemgate.db"

[routing]
circuit_failures = 0

[[providers]]
name = "google"
type = "gemini"
base_url = "%(google)s"
api_key = "env:%(var)s"

[[models]]
id = "gemini-2.5-flash"
provider = "google"

[[models]]
id = "gemini-3-flash-preview"
provider = "google"
"""
FLASH, G3 = "gemini-2.5-flash", "gemini-3-flash-preview"
PARAMS = {"type": "object", "properties": {"target": {"type": "string"}}, "required": ["target"]}
GRAMMAR = 'start: "*** Begin Patch" LF hunk+ "*** End Patch"\n%import common.LF\n'
NAMESPACE: dict[str, Any] = {
    "type": "namespace", "name": "multi_agent_v1", "description": "Tools for sub-agents.",
    "tools": [{"type": "function", "name": "close_agent", "description": "Close an agent.",
               "parameters": PARAMS, "strict": False}],
}
APPLY_PATCH: dict[str, Any] = {"type": "custom", "name": "apply_patch", "description": "Edit files.",
                               "format": {"type": "grammar", "syntax": "lark", "definition": GRAMMAR}}
EXEC: dict[str, Any] = {"type": "function", "name": "exec_command", "parameters": PARAMS}
PATCH = "*** Begin Patch\n*** Add File: a.txt\n+hi\n*** End Patch\n"
USAGE = {"promptTokenCount": 30, "candidatesTokenCount": 10, "totalTokenCount": 40}


@pytest.fixture(scope="module")
def rgw(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(tmp_path_factory.mktemp("responses-tools"),
                          CONFIG % {"google": fake_google.base_url, "var": UPSTREAM_KEY_VAR},
                          env={UPSTREAM_KEY_VAR: UPSTREAM_KEY})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def key(rgw: GatewayProcess) -> str:
    return rgw.create_key("responses-tools")


@pytest.fixture
def oai(rgw: GatewayProcess, key: str, fake_google: FakeGemini) -> openai.OpenAI:
    fake_google.add_model(G3)  # (each test's reset of the fake drops it)
    return openai.OpenAI(api_key=key, base_url=rgw.base_url + "/v1", max_retries=0)


def answer(parts: list[dict[str, Any]], **cand: Any) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0,
                            **cand}], "usageMetadata": USAGE}


def declared(fake: FakeGemini) -> list[dict[str, Any]]:
    sent = fake.requests[-1].json
    return [d for t in sent.get("tools") or () for d in t.get("functionDeclarations", ())]


def test_namespace_functions_are_declared_and_named_back(oai: openai.OpenAI, fake_google: FakeGemini) -> None:
    fake_google.script(FLASH, answer([{"functionCall": {"id": "call_ns", "name": "multi_agent_v1__close_agent",
                                                        "args": {"target": "a1"}}}]))
    resp = oai.responses.create(model=FLASH, input="close agent a1", tools=[EXEC, NAMESPACE], store=False)
    decls = declared(fake_google)
    assert [d["name"] for d in decls] == ["exec_command", "multi_agent_v1__close_agent"]
    assert decls[1]["parametersJsonSchema"] == PARAMS
    assert decls[1]["description"] == "multi_agent_v1: Tools for sub-agents.\n\nClose an agent."
    assert "warnings" not in (resp.model_extra or {})
    call = resp.output[0]
    assert call.type == "function_call" and call.name == "close_agent" and call.namespace == "multi_agent_v1"
    assert call.call_id == "call_ns" and json.loads(call.arguments) == {"target": "a1"}
    # Codex replays the call with its namespace and answers it.
    replay: list[Any] = [{"role": "user", "content": "close agent a1"}, call.model_dump(exclude_none=True),
                         {"type": "function_call_output", "call_id": "call_ns", "output": "closed"}]
    oai.responses.create(model=FLASH, input=replay, tools=[EXEC, NAMESPACE], store=False)
    contents = fake_google.requests[-1].json["contents"]
    assert contents[1]["parts"] == [{"functionCall": {"id": "call_ns", "name": "multi_agent_v1__close_agent",
                                                      "args": {"target": "a1"}}}]
    assert contents[2]["parts"] == [{"functionResponse": {"id": "call_ns", "name": "multi_agent_v1__close_agent",
                                                          "response": {"output": "closed"}}}]


def test_custom_tool_unary_streamed_and_its_output(oai: openai.OpenAI, fake_google: FakeGemini,
                                                   rgw: GatewayProcess) -> None:
    call = {"functionCall": {"id": "call_p", "name": "apply_patch", "args": {"input": PATCH}}}
    fake_google.script(FLASH, answer([call]))
    raw = oai.responses.with_raw_response.create(model=FLASH, input="add a.txt", tools=[EXEC, APPLY_PATCH],
                                                 store=False)
    resp = raw.parse()
    decl = declared(fake_google)[1]
    assert decl["name"] == "apply_patch" and decl["description"] == "Edit files."
    schema = decl["parametersJsonSchema"]
    assert schema["required"] == ["input"] and schema["properties"]["input"]["type"] == "string"
    assert GRAMMAR in schema["properties"]["input"]["description"]
    item = resp.output[0]
    assert item.type == "custom_tool_call" and item.name == "apply_patch" and item.input == PATCH
    assert item.call_id == "call_p"
    assert record(rgw, raw.headers["x-gemgate-request-id"])["output_text"] == 10

    fake_google.script(FLASH, stream=[
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Patching."}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": USAGE},
    ])
    with oai.responses.stream(model=FLASH, input="add a.txt", tools=[EXEC, APPLY_PATCH], store=False) as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    at = kinds.index("response.custom_tool_call_input.delta")
    assert kinds[at - 1: at + 3] == ["response.output_item.added", "response.custom_tool_call_input.delta",
                                     "response.custom_tool_call_input.done", "response.output_item.done"]
    assert events[at].delta == PATCH and events[at + 1].input == PATCH  # type: ignore[union-attr]
    assert [i.type for i in final.output] == ["message", "custom_tool_call"]
    assert final.output[1].input == PATCH  # type: ignore[union-attr]

    replay: list[Any] = [{"role": "user", "content": "add a.txt"}, item.model_dump(exclude_none=True),
                         {"type": "custom_tool_call_output", "call_id": "call_p", "output": "Done: A a.txt"}]
    oai.responses.create(model=FLASH, input=replay, tools=[EXEC, APPLY_PATCH], store=False)
    contents = fake_google.requests[-1].json["contents"]
    assert contents[1]["parts"] == [call]
    assert contents[2]["parts"] == [{"functionResponse": {"id": "call_p", "name": "apply_patch",
                                                          "response": {"output": "Done: A a.txt"}}}]


def test_allowed_tools_narrow_the_declarations(oai: openai.OpenAI, fake_google: FakeGemini) -> None:
    tools: list[Any] = [EXEC, APPLY_PATCH, NAMESPACE]
    listed = [{"type": "function", "name": "exec_command"},
              {"type": "function", "name": "close_agent", "namespace": "multi_agent_v1"}]
    oai.responses.create(model=FLASH, input="hi", tools=tools, store=False,
                         tool_choice={"type": "allowed_tools", "mode": "auto", "tools": listed})
    assert [d["name"] for d in declared(fake_google)] == ["exec_command", "multi_agent_v1__close_agent"]
    assert fake_google.requests[-1].json["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    oai.responses.create(model=FLASH, input="hi", tools=tools, store=False,
                         tool_choice={"type": "allowed_tools", "mode": "required",
                                      "tools": [{"type": "custom", "name": "apply_patch"}]})
    assert [d["name"] for d in declared(fake_google)] == ["apply_patch"]
    assert fake_google.requests[-1].json["toolConfig"] == {
        "functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["apply_patch"]}}


def test_built_in_tools_next_to_functions_where_the_model_takes_both(
    oai: openai.OpenAI, fake_google: FakeGemini
) -> None:
    tools: list[Any] = [EXEC, {"type": "web_search"}]
    resp = oai.responses.create(model=FLASH, input="news?", tools=tools, store=False)
    assert [list(t) for t in fake_google.requests[-1].json["tools"]] == [["functionDeclarations"]]
    assert any("web_search cannot be combined" in w for w in (resp.model_extra or {})["warnings"])
    resp = oai.responses.create(model=G3, input="news?", tools=tools, store=False)
    sent = fake_google.requests[-1].json
    assert sent["tools"][1:] == [{"googleSearch": {}}] and "functionDeclarations" in sent["tools"][0]
    assert sent["toolConfig"] == {"includeServerSideToolInvocations": True}
    assert "warnings" not in (resp.model_extra or {})


TEXT = "Café prices rose 5%. Rents fell."  # "é" is two bytes: Gemini's offsets are bytes
GROUNDING = {
    "webSearchQueries": ["cafe prices 2026"],
    "groundingChunks": [{"web": {"uri": "https://a.example/prices", "title": "a.example"}},
                        {"web": {"uri": "https://b.example/rents", "title": "b.example"}}],
    "groundingSupports": [
        {"segment": {"startIndex": 0, "endIndex": 21, "text": "Café prices rose 5%."}, "groundingChunkIndices": [0]},
        {"segment": {"startIndex": 22, "endIndex": 33, "text": "Rents fell."}, "groundingChunkIndices": [1]},
    ],
}


def _check_grounded(output: list[Any]) -> None:
    assert [i.type for i in output] == ["message", "web_search_call"]
    text = output[0].content[0]
    assert text.text == TEXT
    spans = [(a.start_index, a.end_index, a.url, a.title) for a in text.annotations]
    assert spans == [(0, 20, "https://a.example/prices", "a.example"), (21, 32, "https://b.example/rents", "b.example")]
    assert [TEXT[s:e] for s, e, _u, _t in spans] == ["Café prices rose 5%.", "Rents fell."]
    search = output[1]
    assert search.status == "completed" and search.action.type == "search"
    assert search.action.query == "cafe prices 2026"
    assert [s.url for s in search.action.sources] == ["https://a.example/prices", "https://b.example/rents"]


def test_grounding_renders_search_call_and_citations(oai: openai.OpenAI, fake_google: FakeGemini) -> None:
    fake_google.script(FLASH, answer([{"text": TEXT}], groundingMetadata=GROUNDING))
    resp = oai.responses.create(model=FLASH, input="prices?", tools=[{"type": "web_search"}], store=False)
    _check_grounded(resp.output)
    fake_google.script(FLASH, stream=[
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Café prices "}]}, "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "rose 5%. Rents fell."}]},
                         "finishReason": "STOP", "index": 0, "groundingMetadata": GROUNDING}], "usageMetadata": USAGE},
    ])
    with oai.responses.stream(model=FLASH, input="prices?", tools=[{"type": "web_search"}], store=False) as stream:
        events = list(stream)
        final = stream.get_final_response()
    _check_grounded(final.output)
    kinds = [e.type for e in events]
    assert kinds.count("response.output_text.annotation.added") == 2
    assert kinds.index("response.output_text.annotation.added") < kinds.index("response.output_text.done")
    assert "response.web_search_call.completed" in kinds


def test_compact_summarises_into_a_compaction_item(oai: openai.OpenAI, fake_google: FakeGemini,
                                                   rgw: GatewayProcess, key: str) -> None:
    fake_google.script(FLASH, answer([{"text": "thinking", "thought": True},
                                      {"text": "The user wants a.txt; it was created."}]))
    history: list[Any] = [
        {"role": "user", "content": [{"type": "input_text", "text": "create a.txt"}]},
        {"type": "function_call", "call_id": "c1", "name": "exec_command", "arguments": '{"target": "a"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Created."}]},
    ]
    raw = oai.responses.with_raw_response.compact(model=FLASH, input=history, instructions="be a coding agent")
    done = raw.parse()
    assert done.object == "response.compaction" and done.id.startswith("resp_")
    assert [i.type for i in done.output] == ["message", "compaction"]
    assert done.output[0].content[0].text == "create a.txt"  # type: ignore[union-attr]
    assert done.usage.input_tokens == 30 and done.usage.output_tokens == 10
    sent = fake_google.requests[-1].json
    assert [c["role"] for c in sent["contents"]] == ["user", "model", "user", "model", "user"]
    assert "be a coding agent" in sent["systemInstruction"]["parts"][0]["text"]
    rec = record(rgw, raw.headers["x-gemgate-request-id"])
    assert rec["door"] == "openai_responses" and rec["status"] == "ok"
    assert rec["cost_nanos"] == 30 * 300 + 10 * 2500
    # The compacted list continues the conversation: the summary reaches the model.
    oai.responses.create(model=FLASH, store=False, input=[
        *[i.model_dump(exclude_none=True) for i in done.output], {"role": "user", "content": "next?"}])
    contents = fake_google.requests[-1].json["contents"]
    texts = [p["text"] for c in contents for p in c["parts"]]
    assert texts[0] == "create a.txt" and "The user wants a.txt; it was created." in texts[1]
    # A malformed request is refused in OpenAI's envelope.
    bad = httpx.post(rgw.base_url + "/v1/responses/compact", headers={"Authorization": f"Bearer {key}"},
                     json={"model": FLASH})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"


def test_missing_previous_response(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        oai.responses.create(model=FLASH, previous_response_id="resp_nope", input="hi")
    assert missing.value.body["code"] == "previous_response_not_found"  # type: ignore[index]
    assert missing.value.body["param"] == "previous_response_id"  # type: ignore[index]
    assert missing.value.body["type"] == "invalid_request_error"  # type: ignore[index]
