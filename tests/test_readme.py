"""The README's set-up and Quickstart, run exactly as written against a zero-config gateway.

The gateway is started with the set-up command's ``gemgate serve`` (no config file: SQLite
and the built-in local model) in a directory of its own; the Quickstart's shell blocks run
in bash there and its Python blocks as scripts. Only the address (127.0.0.1:8080 becomes a
free port) and the key (``$KEY`` in shell, ``KEY`` in Python) are substituted. The Python
blocks reach the gateway through a recording proxy so that every answer they got can be
checked: a short, non-empty text that ended on its own (finishReason STOP).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.zero_config import ZeroConfigGateway, shell_env

README = Path(__file__).resolve().parent.parent / "README.md"
README_ADDRESS = "127.0.0.1:8080"
SECONDS = 30.0  # a generous bound: each answer takes about a second on two cores


def section(title: str) -> str:
    """The README's ``## title`` section."""
    text = README.read_text()
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no section {title!r}"
    return match.group(1)


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", text, re.M | re.S)


def shell_commands(block: str) -> list[str]:
    """The commands of a shell block (continuation lines joined), without comments."""
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def local(text: str, port: int) -> str:
    assert README_ADDRESS in text, text
    return text.replace(README_ADDRESS, f"127.0.0.1:{port}")


# --- judging answers ---------------------------------------------------------------------


def candidate_text(event: dict[str, Any]) -> str:
    parts = event["candidates"][0].get("content", {}).get("parts", [])
    return "".join(p.get("text", "") for p in parts)


def check_unary(body: bytes) -> str:
    data = json.loads(body)
    assert data["candidates"][0]["finishReason"] == "STOP", data
    text = candidate_text(data)
    assert text.strip(), data
    assert data["usageMetadata"]["candidatesTokenCount"] < 128, data
    return text


def check_sse(body: bytes) -> str:
    events = [json.loads(line[6:]) for line in body.decode().splitlines() if line.startswith("data: ")]
    assert events, body
    assert all("error" not in e for e in events), body
    assert events[-1]["candidates"][0]["finishReason"] == "STOP", events[-1]
    text = "".join(candidate_text(e) for e in events)
    assert text.strip(), body
    return text


def check_answer(command: str, body: bytes) -> str:
    return check_sse(body) if "alt=sse" in command else check_unary(body)


# --- a recording proxy for the Python snippets ---------------------------------------------


@dataclass
class Exchange:
    method: str
    path: str
    status: int
    body: bytes


class RecordingProxy:
    """Forwards every request to the gateway, streaming the answer back, and keeps a copy."""

    def __init__(self, upstream: str) -> None:
        self.exchanges: list[Exchange] = []
        proxy = self
        client = httpx.Client(base_url=upstream, timeout=120.0)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
                with client.stream(self.command, self.path, headers=headers, content=body) as resp:
                    self.send_response(resp.status_code)
                    for k, v in resp.headers.items():
                        if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                            self.send_header(k, v)
                    self.end_headers()
                    seen = bytearray()
                    for chunk in resp.iter_bytes():
                        seen += chunk
                        self.wfile.write(chunk)
                        self.wfile.flush()
                proxy.exchanges.append(Exchange(self.command, self.path, resp.status_code, bytes(seen)))

            do_GET = do_POST = do_DELETE = do_PATCH = _forward

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._client = client
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()


# --- the gateway, as the README starts it ---------------------------------------------------


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZeroConfigGateway]:
    setup = blocks(section("Set up"), "sh")[0]
    serve = shell_commands(setup)[0].split("&&")[-1].strip()
    assert serve.endswith("gemgate serve"), serve
    gw = ZeroConfigGateway(tmp_path_factory.mktemp("fresh-clone"), serve).start()
    try:
        yield gw
    finally:
        gw.stop()


@dataclass
class CreatedKey:
    key: str
    hint: str  # what keys create printed besides the key


@pytest.fixture(scope="module")
def created(gateway: ZeroConfigGateway) -> CreatedKey:
    """The Quickstart's first block, which creates a key and keeps it in ``$KEY``."""
    first = blocks(section("Quickstart"), "sh")[0]
    assert "keys create" in first
    result = gateway.sh(first + '\nprintf "%s" "$KEY"')
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key and "\n" not in key, result.stdout
    return CreatedKey(key, result.stderr)


def test_serve_tells_the_command_that_makes_a_key(gateway: ZeroConfigGateway) -> None:
    match = re.search(r"no API keys yet\. Create one with:\s+(.+)", gateway.output())
    assert match, gateway.output()
    command = match.group(1).strip().replace("NAME", "first-key")
    result = gateway.sh(command)
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip().splitlines()[-1]
    resp = httpx.post(
        f"{gateway.base_url}/v1beta/models/gemma-3-270m:countTokens",
        headers={"x-goog-api-key": key}, json={"contents": [{"parts": [{"text": "hi"}]}]},
    )
    assert resp.status_code == 200, resp.text


def test_keys_create_prints_a_curl_that_answers(gateway: ZeroConfigGateway, created: CreatedKey) -> None:
    curls = [line.strip() for line in created.hint.splitlines() if line.strip().startswith("curl ")]
    assert len(curls) == 1, created.hint
    command = local(curls[0], gateway.port)
    t0 = time.monotonic()
    result = gateway.sh(command, KEY=created.key)
    assert time.monotonic() - t0 < SECONDS
    assert result.returncode == 0, result.stderr
    check_answer(command, result.stdout.encode())


def curl_commands() -> list[str]:
    commands: list[str] = []
    for block in blocks(section("Quickstart"), "sh")[1:]:
        commands += [c for c in shell_commands(block) if c.startswith("curl ")]
    return commands


def test_quickstart_has_the_documented_examples() -> None:
    assert len(curl_commands()) >= 2
    assert len(blocks(section("Quickstart"), "python")) >= 2


@pytest.mark.parametrize("command", curl_commands())
def test_quickstart_curl(gateway: ZeroConfigGateway, created: CreatedKey, command: str) -> None:
    command = local(command, gateway.port)
    t0 = time.monotonic()
    result = gateway.sh(command, KEY=created.key)
    assert time.monotonic() - t0 < SECONDS, "the answer took too long"
    assert result.returncode == 0, result.stderr
    check_answer(command, result.stdout.encode())


@pytest.mark.parametrize(
    "snippet", blocks(section("Quickstart"), "python"), ids=lambda s: s.split("\n")[0]
)
def test_quickstart_python(gateway: ZeroConfigGateway, created: CreatedKey, snippet: str) -> None:
    proxy = RecordingProxy(gateway.base_url)
    try:
        script = "import os\nKEY = os.environ['KEY']\n" + snippet.replace(
            f"http://{README_ADDRESS}", proxy.url
        )
        t0 = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-c", script], cwd=gateway.workdir, env=shell_env(KEY=created.key),
            capture_output=True, text=True, timeout=120,
        )
        elapsed = time.monotonic() - t0
    finally:
        proxy.close()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert elapsed < SECONDS, f"the snippet took {elapsed:.1f} s"
    generated = 0
    for ex in proxy.exchanges:
        assert ex.status == 200, (ex.path, ex.body)
        if ":streamGenerateContent" in ex.path:
            check_sse(ex.body)
        elif ":generateContent" in ex.path:
            check_unary(ex.body)
        elif ex.path.endswith("/chat/completions"):
            choice = json.loads(ex.body)["choices"][0]
            assert choice["finish_reason"] == "stop", choice
            assert choice["message"]["content"].strip(), choice
        elif ex.path.split("?")[0].endswith("/v1/messages"):
            message = json.loads(ex.body)
            assert message["stop_reason"] == "end_turn", message
            assert "".join(b.get("text", "") for b in message["content"]).strip(), message
        elif ex.path.split("?")[0].endswith("/v1/responses"):
            response = json.loads(ex.body)
            assert response["status"] == "completed", response
            texts = [c.get("text", "") for item in response["output"] for c in item.get("content") or ()]
            assert "".join(texts).strip(), response
        else:
            continue
        generated += 1
    assert generated >= 1, [ex.path for ex in proxy.exchanges]
