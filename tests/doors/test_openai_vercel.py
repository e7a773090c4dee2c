"""The Vercel AI SDK (``ai`` + ``@ai-sdk/openai``, unchanged, driven from node) runs a Gemini 3
tool loop through the OpenAI door: its OpenAI provider drops Google's ``extra_content``, so
the thought signature must come back inside the tool-call id, or the fake Google refuses
the second step as Google does. Both ``generateText`` and ``streamText``.

The packages are installed from npm into pytest's cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.doors.test_openai_signatures import (
    MODEL,
    SIGNATURE,
    g3,
    oa,
    script_tool_step,
    sent_model_turn,
)
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

pytestmark = pytest.mark.slow
__all__ = ["g3", "oa"]

PACKAGES = ["ai@6", "@ai-sdk/openai@3", "zod@4"]
SCRIPT = """
import { generateText, streamText, tool, stepCountIs } from "ai";
import { createOpenAI } from "@ai-sdk/openai";
import { z } from "zod";

const [baseURL, apiKey, model, mode] = process.argv.slice(2);
const sent = [];  // every request body the SDK sends, to show what it keeps
const recording = async (url, init) => { sent.push(JSON.parse(init.body)); return fetch(url, init); };
const provider = createOpenAI({ baseURL, apiKey, fetch: recording });
const tools = {
  get_weather: tool({
    description: "The weather in a city",
    inputSchema: z.object({ city: z.string() }),
    execute: async ({ city }) => ({ city, temp: city === "Paris" ? 21 : 25 }),
  }),
};
const args = { model: provider.chat(model), tools, stopWhen: stepCountIs(3),
               prompt: "weather in Paris and Rome?" };
let text, steps;
if (mode === "stream") {
  const result = streamText({ ...args, onError: ({ error }) => { throw error; } });
  text = await result.text;
  steps = (await result.steps).length;
} else {
  const result = await generateText(args);
  text = result.text;
  steps = result.steps.length;
}
console.log(JSON.stringify({ text, steps, sent }));
"""


def node_modules(cache: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("the Vercel AI SDK needs node and npm")
    modules = cache / "node_modules"
    if not all((modules / name.rsplit("@", 1)[0] / "package.json").exists() for name in PACKAGES):
        subprocess.run([npm, "install", "--no-audit", "--no-fund", "--prefix", str(cache), *PACKAGES],
                       check=True, capture_output=True, timeout=600)
    return modules


@pytest.mark.parametrize("mode", ["generate", "stream"])
def test_vercel_ai_sdk_tool_loop_on_gemini_3(
    mode: str, g3: GatewayProcess, oa: object, fake_google: FakeGemini, tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    modules = node_modules(Path(request.config.cache.mkdir("vercel-ai")))
    (tmp_path / "node_modules").symlink_to(modules)
    script = tmp_path / "run.mjs"
    script.write_text(SCRIPT)
    script_tool_step(fake_google, stream=mode == "stream")
    done = subprocess.run(
        ["node", str(script), g3.base_url + "/v1", oa.api_key, MODEL, mode],  # type: ignore[attr-defined]
        capture_output=True, text=True, timeout=120, env={"PATH": os.environ.get("PATH", "")},
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["steps"] == 2 and out["text"].startswith("echo:")
    model, responses = sent_model_turn(fake_google)
    calls = [p for p in model if "functionCall" in p]
    assert calls[0]["thoughtSignature"] == SIGNATURE
    assert [r["response"] for r in responses] == [{"city": "Paris", "temp": 21}, {"city": "Rome", "temp": 25}]
    assert [r["id"] for r in responses] == [c["functionCall"]["id"] for c in calls]
    # the SDK sent no Google field back: the signature came in the id alone
    second = out["sent"][-1]
    assistant = next(m for m in second["messages"] if m["role"] == "assistant")
    assert all(set(c) == {"id", "type", "function"} for c in assistant["tool_calls"])
    assert "extra_content" not in json.dumps(second)
    assert len([r for r in fake_google.requests if r.model == MODEL]) == 2
