"""The JavaScript SDK (``@google/genai``, from npm into pytest's cache) holding Live
sessions through the gateway over TLS: ``?key=`` in the URL, the base URL's ``//ws/``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from tests.doors.live_gateway import TlsGateway, live_fake, live_gw
from tests.fakes.gemini_live_upstream import FakeGeminiLive

__all__ = ["live_fake", "live_gw"]  # fixtures

pytestmark = pytest.mark.slow

PACKAGE = "@google/genai"
SCRIPT = """
import { GoogleGenAI, Modality } from '@google/genai';
const [base, key, model] = process.argv.slice(2);
const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: base, apiVersion: 'v1beta' } });
const turns = [];
let current = [];
let turnDone = () => {};
let closed = null;
const session = await ai.live.connect({
  model,
  config: { responseModalities: [Modality.TEXT] },
  callbacks: {
    onmessage: (m) => {
      for (const part of m.serverContent?.modelTurn?.parts ?? []) if (part.text) current.push(part.text);
      if (m.serverContent?.turnComplete) {
        turns.push({ text: current.join(''), usage: m.usageMetadata });
        current = [];
        turnDone();
      }
    },
    onerror: (e) => console.error('error', e.message),
    onclose: (e) => { closed = { code: e.code, reason: e.reason }; turnDone(); },
  },
});
for (const text of ['hello from js', 'what is the capital of France?']) {
  const done = new Promise((resolve) => { turnDone = resolve; });
  session.sendClientContent({ turns: [{ role: 'user', parts: [{ text }] }], turnComplete: true });
  await done;
  if (closed) break;
}
session.close();
console.log(JSON.stringify({ turns, closed }));
"""


def genai_js(cache: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("the JavaScript SDK needs node and npm")
    if not (cache / "node_modules" / "@google" / "genai" / "package.json").exists():
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), PACKAGE],
                       check=True, capture_output=True, timeout=600)
    script = cache / "live.mjs"
    script.write_text(SCRIPT)
    return script


def run_js(script: Path, gw: TlsGateway, key: str, model: str) -> dict[str, Any]:
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(gw.cert)}
    out = subprocess.run(["node", str(script), gw.base_url, key, model], cwd=script.parent,
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize("model", ["gemini-live-2.5-flash", "gemma-3-270m"])
def test_js_sdk_multi_turn(live_gw: TlsGateway, live_fake: FakeGeminiLive, model: str,
                           request: pytest.FixtureRequest) -> None:
    script = genai_js(Path(request.config.cache.mkdir("google-genai-js")))
    key = live_gw.create_key(f"live-js-{model}")
    result = run_js(script, live_gw, key, model)
    turns = result["turns"]
    assert len(turns) == 2, result
    if model.startswith("gemini"):
        assert turns[0]["text"] == "echo: hello from js"
        assert live_fake.sessions[-1].setup["model"] == "models/gemini-live-upstream-001"
    for turn in turns:
        assert turn["text"].strip()
        assert turn["usage"]["responseTokenCount"] > 0
    assert key not in live_gw.log.read_text()
