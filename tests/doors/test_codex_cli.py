"""Codex CLI, unchanged, against the Responses door and a Gemini upstream: a
non-interactive task (``codex exec``) that needs a tool call, scripted upstream as Gemini
would answer it (a signed functionCall, then the answer), and every request Codex made
served, each with one exact usage record.

Codex is configured as its docs describe for a custom provider: ``model_provider`` naming
a ``[model_providers.X]`` table whose ``base_url`` is the gateway, ``wire_api =
"responses"`` and ``env_key`` naming the variable that holds the gateway key. What it sends
(measured with 0.171): ``stream: true``, ``store: false`` and the whole conversation
replayed, developer messages, ``reasoning: {"summary": "auto"}``,
``include: ["reasoning.encrypted_content"]``, ``prompt_cache_key``, ``client_metadata``,
function tools next to a ``namespace`` tool (``multi_agent_v1``) and ``web_search``; with a
``model_catalog_json`` entry whose ``apply_patch_tool_type`` is ``freeform``, also the
``apply_patch`` custom tool with its Lark grammar. Codex runs a namespaced call only when it
comes back as ``{"name": "close_agent", "namespace": "multi_agent_v1"}`` (measured: a
qualified ``multi_agent_v1.close_agent`` name answers "unsupported call").

Codex is taken from PATH (``codex``) or installed from npm into pytest's cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.doors.anthropic_gateway import records
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.recording_proxy import RecordingProxy
from tests.gateway_process import GatewayProcess

pytestmark = pytest.mark.slow

PACKAGE = "@openai/codex"
SIGNATURE = "c2lnbmVkLWJ5LWdlbWluaS1mb3ItY29kZXg="
CONFIG = """
model = "gemini-2.5-flash"
model_provider = "gemgate"
approval_policy = "never"
sandbox_mode = "danger-full-access"

[model_providers.gemgate]
name = "gemgate"
base_url = "{base_url}/v1"
env_key = "GEMGATE_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"""


def codex_binary(cache: Path) -> str:
    found = shutil.which("codex")
    if found:
        return found
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("Codex CLI needs npm to install it")
    # The package's bin is a node launcher for the platform package's native binary.
    launcher = cache / "node_modules" / "@openai" / "codex" / "bin" / "codex.js"
    native = list((cache / "node_modules" / "@openai").glob("codex-*/vendor/*/bin/codex"))
    if not launcher.exists() or not native:
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), PACKAGE],
                       check=True, capture_output=True, timeout=600)
    return str(cache / "node_modules" / ".bin" / "codex")


def test_codex_completes_a_tool_task(
    agw: GatewayProcess, akey: str, fake_google: FakeGemini, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    codex = codex_binary(Path(request.config.cache.mkdir("codex-cli")))
    work = tmp_path / "work"
    work.mkdir()
    (work / "answer.txt").write_text("The secret number is 4217.\n")
    call = {"functionCall": {"name": "exec_command", "args": {"cmd": "cat answer.txt"}},
            "thoughtSignature": SIGNATURE}
    fake_google.script("gemini-2.5-flash", stream=[
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Read the file first.", "thought": True}]},
                         "index": 0}], "usageMetadata": {"promptTokenCount": 9000, "totalTokenCount": 9000}},
        {"candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 9000, "candidatesTokenCount": 20, "thoughtsTokenCount": 5,
                           "totalTokenCount": 9025}},
    ])
    fake_google.script("gemini-2.5-flash", stream=[
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "The file says the number "}]},
                         "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "is 4217."}]}, "finishReason": "STOP",
                         "index": 0}],
         "usageMetadata": {"promptTokenCount": 9100, "candidatesTokenCount": 9, "totalTokenCount": 9109}},
    ])
    home = tmp_path / "codex-home"
    home.mkdir()
    before = len(records(agw))
    with RecordingProxy(agw.base_url) as proxy:
        (home / "config.toml").write_text(CONFIG.format(base_url=proxy.base_url))
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(tmp_path),
            "CODEX_HOME": str(home),
            "GEMGATE_KEY": akey,
            "NO_COLOR": "1",
        }
        done = subprocess.run(
            [codex, "exec", "--skip-git-repo-check", "--ephemeral", "--color", "never",
             "-o", str(tmp_path / "last.txt"),
             "What is the secret number in answer.txt? Read the file."],
            cwd=work, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
        )
    exchanges = proxy.exchanges
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{exchanges}"
    assert exchanges and all(e.status == 200 for e in exchanges), exchanges  # every request served
    assert "4217" in (tmp_path / "last.txt").read_text()
    calls = [e for e in exchanges if e.path == "/v1/responses"]
    assert len(calls) == 2, exchanges
    main = [r for r in fake_google.requests if r.model == "gemini-2.5-flash"]
    assert len(main) == 2
    first, last = main[0].json, main[1].json
    assert first is not None and last is not None
    declared = [d["name"] for t in first["tools"] for d in t.get("functionDeclarations", ())]
    assert "exec_command" in declared and len(first["tools"]) == 1  # web_search left out
    model_parts = [p for c in last["contents"] if c.get("role") == "model" for p in c["parts"]]
    signed = [p for p in model_parts if "functionCall" in p]
    assert signed and signed[-1]["thoughtSignature"] == SIGNATURE  # the signature came back
    assert signed[-1]["functionCall"]["name"] == "exec_command"
    results = [p["functionResponse"] for c in last["contents"] for p in c["parts"] if "functionResponse" in p]
    assert results and results[-1]["name"] == "exec_command" and "4217" in json.dumps(results[-1]["response"])
    made = records(agw)[before:]
    assert len(made) == len(calls) == 2 and all(r["door"] == "openai_responses" for r in made)
    assert all(r["status"] == "ok" for r in made), made
    assert [(r["prompt_tokens"], r["output_text"], r["thoughts_tokens"]) for r in made] == [
        (9000, 20, 5), (9100, 9, 0)]
    assert [r["cost_nanos"] for r in made] == [9000 * 300 + 25 * 2500, 9100 * 300 + 9 * 2500]


# What Codex needs to know of a model to declare its freeform ``apply_patch`` tool (a custom
# tool with a Lark grammar): without an entry, a custom provider's model gets fallback
# metadata and edits files through exec_command only.
CATALOG = {"models": [{
    "slug": "gemini-2.5-flash", "display_name": "gemini-2.5-flash", "description": "Gemini through gemgate",
    "apply_patch_tool_type": "freeform", "shell_type": "shell_command", "visibility": "list",
    "supported_in_api": True, "priority": 0, "context_window": 200000, "supports_reasoning_summaries": True,
    "supports_parallel_tool_calls": True, "input_modalities": ["text"],
    "truncation_policy": {"mode": "tokens", "limit": 10000}, "support_verbosity": False,
    "default_verbosity": None, "supported_reasoning_levels": [], "default_reasoning_level": None,
    "reasoning_summary_format": "none", "base_instructions": "You are a coding agent.", "upgrade": None,
    "minimal_client_version": "0.0.1", "experimental_supported_tools": [],
}]}
PATCH = "*** Begin Patch\n*** Add File: hello.txt\n+Hello from Gemini.\n*** End Patch\n"


def test_codex_edits_a_file_with_apply_patch(
    agw: GatewayProcess, akey: str, fake_google: FakeGemini, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Codex's freeform apply_patch (a ``custom`` tool) runs as a Gemini function with one
    string argument, and the call comes back as the ``custom_tool_call`` Codex executes."""
    codex = codex_binary(Path(request.config.cache.mkdir("codex-cli")))
    work = tmp_path / "work"
    work.mkdir()
    call = {"functionCall": {"name": "apply_patch", "args": {"input": PATCH}}}
    fake_google.script("gemini-2.5-flash", stream=[
        {"candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 8000, "candidatesTokenCount": 30, "totalTokenCount": 8030}},
    ])
    fake_google.script("gemini-2.5-flash", stream=[
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Created hello.txt."}]},
                         "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 8100, "candidatesTokenCount": 4, "totalTokenCount": 8104}},
    ])
    home = tmp_path / "codex-home"
    home.mkdir()
    (home / "models.json").write_text(json.dumps(CATALOG))
    before = len(records(agw))
    with RecordingProxy(agw.base_url) as proxy:
        (home / "config.toml").write_text(
            f"model_catalog_json = {json.dumps(str(home / 'models.json'))}\n" + CONFIG.format(base_url=proxy.base_url))
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CODEX_HOME": str(home),
               "GEMGATE_KEY": akey, "NO_COLOR": "1"}
        done = subprocess.run(
            [codex, "exec", "--skip-git-repo-check", "--ephemeral", "--color", "never",
             "Create hello.txt saying hello."],
            cwd=work, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
        )
    exchanges = proxy.exchanges
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{exchanges}"
    assert exchanges and all(e.status == 200 for e in exchanges), exchanges
    assert (work / "hello.txt").read_text() == "Hello from Gemini.\n"  # Codex applied the patch
    main = [r for r in fake_google.requests if r.model == "gemini-2.5-flash"]
    assert len(main) == 2
    first, last = main[0].json, main[1].json
    assert first is not None and last is not None
    decls = {d["name"]: d for t in first["tools"] for d in t.get("functionDeclarations", ())}
    assert decls["apply_patch"]["parametersJsonSchema"]["required"] == ["input"]
    assert "Begin Patch" in decls["apply_patch"]["parametersJsonSchema"]["properties"]["input"]["description"]
    # Codex's namespace tool reaches the model too, flattened.
    assert any(name.startswith("multi_agent_v1__") for name in decls), sorted(decls)
    results = [p["functionResponse"] for c in last["contents"] for p in c["parts"] if "functionResponse" in p]
    assert results and results[-1]["name"] == "apply_patch"
    assert "hello.txt" in json.dumps(results[-1]["response"])
    made = records(agw)[before:]
    assert len(made) == 2 and all(r["status"] == "ok" for r in made), made
