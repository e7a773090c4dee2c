"""Claude Code, unchanged, against the Anthropic door and a Gemini upstream: a
non-interactive task (``claude -p``) that needs a tool call, scripted upstream as Gemini
would answer it (a signed functionCall), and every request Claude Code made served.

Claude Code is taken from PATH (``claude``) or installed from npm into pytest's cache."""

from __future__ import annotations

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

PACKAGE = "@anthropic-ai/claude-code"
SIGNATURE = "c2lnbmVkLWJ5LWdlbWluaQ=="


def claude_binary(cache: Path) -> str:
    found = shutil.which("claude")
    if found:
        return found
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("Claude Code needs npm to install it")
    binary = cache / "node_modules" / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"
    if not binary.exists() or binary.stat().st_size < 1_000_000:
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), PACKAGE],
                       check=True, capture_output=True, timeout=600)
        # Newer npm holds back install scripts: the wrapper's own postinstall puts the
        # platform's native binary in place.
        subprocess.run(["node", "install.cjs"], cwd=binary.parent.parent, check=True,
                       capture_output=True, timeout=120)
    return str(binary)


def test_claude_code_completes_a_tool_task(
    agw: GatewayProcess, akey: str, fake_google: FakeGemini, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    claude = claude_binary(Path(request.config.cache.mkdir("claude-code")))
    work = tmp_path / "work"
    work.mkdir()
    target = work / "answer.txt"
    target.write_text("The secret number is 4217.\n")
    call = {"functionCall": {"name": "Read", "args": {"file_path": str(target)}}, "thoughtSignature": SIGNATURE}
    fake_google.script("gemini-2.5-flash", {
        "candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 20, "totalTokenCount": 920},
    })
    fake_google.script("gemini-2.5-flash", {
        "candidates": [{"content": {"role": "model", "parts": [{"text": "The file says the number is 4217."}]},
                        "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 950, "candidatesTokenCount": 9, "totalTokenCount": 959},
    })
    before = len(records(agw))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path / "home"),
        "ANTHROPIC_API_KEY": akey,
        "ANTHROPIC_MODEL": "gemini-2.5-flash",
        "ANTHROPIC_SMALL_FAST_MODEL": "gemini-2.5-pro",
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": "gemini-2.5-pro",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }
    (tmp_path / "home").mkdir()
    with RecordingProxy(agw.base_url) as proxy:
        env["ANTHROPIC_BASE_URL"] = proxy.base_url
        done = subprocess.run(
            [claude, "-p", "What is the secret number in answer.txt? Read the file.",
             "--allowedTools", "Read", "--output-format", "text"],
            cwd=work, env=env, capture_output=True, text=True, timeout=240, stdin=subprocess.DEVNULL,
        )
    exchanges = proxy.exchanges
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{exchanges}"
    assert exchanges and all(e.status == 200 for e in exchanges), exchanges  # every request served
    assert "4217" in done.stdout
    main = [r for r in fake_google.requests if r.model == "gemini-2.5-flash"]
    assert len(main) >= 2
    last = main[-1].json
    assert last is not None
    model_parts = [p for c in last["contents"] if c.get("role") == "model" for p in c["parts"]]
    signed = [p for p in model_parts if "functionCall" in p]
    assert signed and signed[-1]["thoughtSignature"] == SIGNATURE  # the signature came back
    results = [p["functionResponse"] for c in last["contents"] for p in c["parts"] if "functionResponse" in p]
    assert results and results[-1]["name"] == "Read" and "4217" in str(results[-1]["response"])
    made = records(agw)[before:]
    assert made and all(r["door"] == "anthropic" for r in made)
    assert all(r["status"] == "ok" for r in made), made
