"""The JS SDK (``@google/genai``, installed with npm into a temporary directory) uploads a
file through the gateway and reads it back, unchanged."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.gateway_process import GatewayProcess

pytestmark = pytest.mark.slow

SCRIPT = """
import { GoogleGenAI } from "@google/genai";
const [base, key, path] = process.argv.slice(2);
const ai = new GoogleGenAI({ apiKey: key, httpOptions: { baseUrl: base } });
const uploaded = await ai.files.upload({ file: path, config: { mimeType: "text/plain", displayName: "from js" } });
const got = await ai.files.get({ name: uploaded.name });
console.log(JSON.stringify({ uploaded, got }));
"""


@pytest.fixture(scope="module")
def js_sdk(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    where = tmp_path_factory.mktemp("js-genai")
    (where / "package.json").write_text('{"name": "gemgate-js-test", "private": true, "type": "module"}')
    try:
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", "@google/genai"],
            cwd=where, check=True, capture_output=True, timeout=300,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"npm could not install @google/genai: {exc}")
    (where / "upload.mjs").write_text(SCRIPT)
    return where


def test_js_sdk_uploads_and_gets_a_file(
    js_sdk: Path, resource_gw: GatewayProcess, make_key: Callable[..., str], tmp_path: Path
) -> None:
    data = "hello from node\n" * (700_000)  # 11 MB: two chunks of the SDK's 8 MiB
    source = tmp_path / "js.txt"
    source.write_text(data)
    done = subprocess.run(
        ["node", "upload.mjs", resource_gw.base_url + "/gemini", make_key(), str(source)],
        cwd=js_sdk, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["uploaded"]["name"].startswith("files/")
    assert out["uploaded"]["sizeBytes"] == str(len(data))
    assert out["got"]["name"] == out["uploaded"]["name"]
    assert out["got"]["displayName"] == "from js"
    assert out["got"]["state"] == "ACTIVE"
