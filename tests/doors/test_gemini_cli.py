"""Gemini CLI, unchanged, against the Gemini door and a Gemini upstream: a non-interactive
task (``gemini -p``) that needs a tool call, scripted upstream as Gemini would answer it (a
signed functionCall, then the answer), every request the CLI made served, each with one
exact usage record; and a key whose budget is spent, which the CLI gives up on at once.

Gemini CLI reads ``GOOGLE_GEMINI_BASE_URL`` and ``GEMINI_API_KEY``; it runs in a temporary
HOME whose ``.gemini/settings.json`` selects API-key auth and turns off usage statistics,
telemetry and auto-update (without ``privacy.usageStatisticsEnabled = false`` it looks up
play.googleapis.com), and ``--skip-trust`` lets it run in an untrusted folder. What it sends
(measured with 0.61.0, the version pinned here): its default model is ``auto``: each prompt
first goes to a router, ``gemini-3.5-flash-lite:generateContent`` with a
``responseJsonSchema`` asking for ``{"complexity_reasoning", "complexity_score"}``; a low
score sends the turn to ``gemini-3.8-flash``, and when the router call fails the turn goes
to the default, ``gemini-3.1-pro-preview``. Turns are ``streamGenerateContent?alt=sse``
under ``/v1beta``, authenticated with ``x-goog-api-key``, declaring its tools as
``parametersJsonSchema`` (``read_file`` takes ``file_path``). It calls no countTokens and
no models.list or models.get.

Gemini CLI is installed from npm (the pinned version) into pytest's cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.conftest import UPSTREAM_KEY
from tests.doors.anthropic_gateway import records
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.recording_proxy import RecordingProxy
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

pytestmark = pytest.mark.slow

PACKAGE = "@google/gemini-cli"
VERSION = "0.61.0"
ROUTER, FLASH, PRO = "gemini-3.5-flash-lite", "gemini-3.8-flash", "gemini-3.1-pro-preview"
SIGNATURE = "c2lnbmVkLWJ5LWdlbWluaS1mb3ItZ2VtaW5pLWNsaQ=="
# Prices in nanos per token, as the config below sets them (fixed: no scheduled change).
ROUTER_IN, ROUTER_OUT = 300, 2500
FLASH_IN, FLASH_OUT = 750, 3750
CONFIG = f"""
[server]
host = "127.0.0.1"
port = {{PORT}}

[database]
url = "sqlite:///{{DIR}}/gemgate.db"

[routing]
circuit_failures = 0

[[providers]]
name = "google"
type = "gemini"
base_url = "%(google)s"
api_key = "env:{UPSTREAM_KEY_VAR}"

[[models]]
id = "{ROUTER}"
provider = "google"
[models.price]
input = "0.30"
output = "2.50"

[[models]]
id = "{FLASH}"
provider = "google"
[models.price]
input = "0.75"
output = "3.75"

[[models]]
id = "{PRO}"
provider = "google"
"""
SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
}
PROMPT = "What is the secret number in answer.txt? Read the file."


def gemini_binary(cache: Path) -> str:
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("Gemini CLI needs npm to install it")
    manifest = cache / "node_modules" / "@google" / "gemini-cli" / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text()).get("version") != VERSION:
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), f"{PACKAGE}@{VERSION}"],
                       check=True, capture_output=True, timeout=600)
    return str(cache / "node_modules" / ".bin" / "gemini")


@pytest.fixture(scope="module")
def cli_gw(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(tmp_path_factory.mktemp("gemini-cli-gateway"), CONFIG % {"google": fake_google.base_url},
                          env={UPSTREAM_KEY_VAR: UPSTREAM_KEY})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def upstream(fake_google: FakeGemini) -> FakeGemini:
    for model in (ROUTER, FLASH, PRO):
        fake_google.add_model(model)
    return fake_google


def run_gemini(binary: str, tmp_path: Path, key: str, base_url: str, *args: str,
               timeout: float) -> subprocess.CompletedProcess[str]:
    home = tmp_path / "home"
    (home / ".gemini").mkdir(parents=True, exist_ok=True)
    (home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "TMPDIR": str(tmp_path),  # where it writes its error reports
        "GEMINI_CLI_SYSTEM_SETTINGS_PATH": str(tmp_path / "system-settings.json"),
        "GEMINI_CLI_SYSTEM_DEFAULTS_PATH": str(tmp_path / "system-defaults.json"),
        "GEMINI_API_KEY": key,
        "GOOGLE_GEMINI_BASE_URL": base_url,
        "NO_COLOR": "1",
        "TERM": "dumb",
    }
    return subprocess.run([binary, *args], cwd=tmp_path / "work", env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def answer(text: str, prompt: int, output: int) -> dict[str, object]:
    return {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP", "index": 0}],
            "usageMetadata": {"promptTokenCount": prompt, "candidatesTokenCount": output,
                              "totalTokenCount": prompt + output}}


def test_gemini_cli_completes_a_tool_task(
    cli_gw: GatewayProcess, upstream: FakeGemini, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gemini = gemini_binary(Path(request.config.cache.mkdir("gemini-cli")))
    key = cli_gw.create_key("gemini-cli")
    work = tmp_path / "work"
    work.mkdir()
    target = work / "answer.txt"
    target.write_text("The secret number is 4217.\n")
    route = json.dumps({"complexity_reasoning": "Simple read operation.", "complexity_score": 10})
    upstream.script(ROUTER, answer(route, 700, 15))
    call = {"functionCall": {"name": "read_file", "args": {"file_path": str(target)}}, "thoughtSignature": SIGNATURE}
    upstream.script(FLASH, stream=[
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Read the file first.", "thought": True}]},
                         "index": 0}], "usageMetadata": {"promptTokenCount": 9000, "totalTokenCount": 9000}},
        {"candidates": [{"content": {"role": "model", "parts": [call]}, "finishReason": "STOP", "index": 0}],
         "usageMetadata": {"promptTokenCount": 9000, "candidatesTokenCount": 20, "thoughtsTokenCount": 5,
                           "totalTokenCount": 9025}},
    ])
    upstream.script(FLASH, stream=[
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "The file says the number "}]},
                         "index": 0}]},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "is 4217."}]}, "finishReason": "STOP",
                         "index": 0}],
         "usageMetadata": {"promptTokenCount": 9100, "candidatesTokenCount": 9, "totalTokenCount": 9109}},
    ])
    before = len(records(cli_gw))
    with RecordingProxy(cli_gw.base_url) as proxy:
        done = run_gemini(gemini, tmp_path, key, proxy.base_url, "-p", PROMPT, "--approval-mode", "yolo",
                          "--skip-trust", "--output-format", "json", timeout=240)
    exchanges = proxy.exchanges
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n{exchanges}"
    assert [(e.method, e.path, e.status) for e in exchanges] == [  # every request served
        ("POST", f"/v1beta/models/{ROUTER}:generateContent", 200),
        ("POST", f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse", 200),
        ("POST", f"/v1beta/models/{FLASH}:streamGenerateContent?alt=sse", 200),
    ], exchanges
    out = json.loads(done.stdout)
    assert out["response"] == "The file says the number is 4217."
    # The CLI read the usage it was billed for from the gateway's stream, unchanged.
    tokens = out["stats"]["models"][FLASH]["tokens"]
    assert (tokens["prompt"], tokens["candidates"], tokens["thoughts"]) == (18100, 29, 5)
    assert out["stats"]["tools"]["byName"]["read_file"]["success"] == 1

    sent = upstream.requests
    assert [(r.model, r.rpc) for r in sent] == [
        (ROUTER, "generateContent"), (FLASH, "streamGenerateContent"), (FLASH, "streamGenerateContent")]
    assert all(r.headers["x-goog-api-key"] == UPSTREAM_KEY for r in sent)  # the gateway's key went upstream
    router = sent[0].json
    assert router["generationConfig"]["responseMimeType"] == "application/json"
    assert "complexity_score" in router["generationConfig"]["responseJsonSchema"]["properties"]
    first, last = sent[1].json, sent[2].json
    decls = {d["name"]: d for t in first["tools"] for d in t.get("functionDeclarations", ())}
    assert decls["read_file"]["parametersJsonSchema"]["required"] == ["file_path"]
    model_parts = [p for c in last["contents"] if c.get("role") == "model" for p in c["parts"]]
    signed = [p for p in model_parts if "functionCall" in p]
    assert signed and signed[-1]["thoughtSignature"] == SIGNATURE  # the signature came back
    assert signed[-1]["functionCall"]["args"] == {"file_path": str(target)}
    results = [p["functionResponse"] for c in last["contents"] for p in c["parts"] if "functionResponse" in p]
    assert results and results[-1]["name"] == "read_file"
    assert results[-1]["response"] == {"output": "The secret number is 4217.\n"}
    assert results[-1]["id"] == signed[-1]["functionCall"]["id"]

    made = records(cli_gw)[before:]
    assert [(r["door"], r["model"], r["method"], r["status"], r["streamed"]) for r in made] == [
        ("gemini", ROUTER, "generateContent", "ok", 0),
        ("gemini", FLASH, "streamGenerateContent", "ok", 1),
        ("gemini", FLASH, "streamGenerateContent", "ok", 1),
    ], made
    assert [(r["prompt_tokens"], r["output_text"], r["thoughts_tokens"], r["estimated"]) for r in made] == [
        (700, 15, 0, 0), (9000, 20, 5, 0), (9100, 9, 0, 0)]
    assert [r["cost_nanos"] for r in made] == [
        700 * ROUTER_IN + 15 * ROUTER_OUT, 9000 * FLASH_IN + 25 * FLASH_OUT, 9100 * FLASH_IN + 9 * FLASH_OUT]


def test_gemini_cli_stops_at_a_spent_budget(
    cli_gw: GatewayProcess, upstream: FakeGemini, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    gemini = gemini_binary(Path(request.config.cache.mkdir("gemini-cli")))
    key = cli_gw.create_key("gemini-cli-budget", "--budget-usd", "1")
    (tmp_path / "work").mkdir()
    # Spend the whole dollar (and more) in one call: 2M prompt tokens at $0.75 / 1M.
    upstream.script(FLASH, answer("ok", 2_000_000, 1))
    spent = httpx.post(f"{cli_gw.base_url}/v1beta/models/{FLASH}:generateContent", headers={"x-goog-api-key": key},
                       json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=30)
    assert spent.status_code == 200, spent.text
    upstream.clear()
    before = len(records(cli_gw))
    started = time.monotonic()
    with RecordingProxy(cli_gw.base_url) as proxy:
        done = run_gemini(gemini, tmp_path, key, proxy.base_url, "-p", PROMPT, "--approval-mode", "yolo",
                          "--skip-trust", timeout=60)
    took = time.monotonic() - started
    exchanges = proxy.exchanges
    assert done.returncode != 0, f"{done.stdout}\n{done.stderr}\n{exchanges}"
    # The router call, then the turn on the default model: each refused once, never retried.
    assert [(e.path, e.status) for e in exchanges] == [
        (f"/v1beta/models/{ROUTER}:generateContent", 402),
        (f"/v1beta/models/{PRO}:streamGenerateContent?alt=sse", 402),
    ], exchanges
    assert took < 30, took  # no backoff either
    assert '"status":"RESOURCE_EXHAUSTED"' in done.stderr and "BUDGET_EXHAUSTED" in done.stderr, done.stderr
    assert upstream.requests == []  # nothing reached Google
    assert records(cli_gw)[before:] == []  # refused before admission: nothing billed
