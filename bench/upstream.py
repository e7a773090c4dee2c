"""The compiled mock upstream (bench/mock/mock.c) as a child process, plus a self-check."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import procs


@dataclass
class MockUpstream:
    binary: Path
    log: Path
    threads: int = 1
    delay_us: int = 0
    port: int = 0
    proc: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = procs.free_port()
        argv = [
            str(self.binary),
            "--port",
            str(self.port),
            "--threads",
            str(self.threads),
            "--delay-us",
            str(self.delay_us),
        ]
        self.proc = procs.spawn(argv, log=self.log)
        procs.wait_until(
            lambda: procs.port_open(self.port),
            timeout=10,
            proc=self.proc,
            what="mock upstream",
            log=self.log,
        )

    def stop(self) -> None:
        procs.stop(self.proc)
        self.proc = None

    def memory(self) -> dict[str, int]:
        return procs.memory_kb(self.proc.pid) if self.proc is not None else {}

    def self_check(self) -> None:
        """Every route answers what the harness relies on."""
        body = b'{"contents":[{"role":"user","parts":[{"text":"hi"}]}]}'
        st, data = procs.http_status(
            f"{self.url}/v1beta/models/bench-model:generateContent", method="POST", body=body
        )
        if st != 200 or "usageMetadata" not in json.loads(data):
            raise RuntimeError(f"mock generateContent: {st} {data[:200]!r}")
        st, data = procs.http_status(
            f"{self.url}/v1beta/models/bench-model:streamGenerateContent?alt=sse",
            method="POST",
            body=body,
        )
        events = [e for e in data.split(b"\r\n\r\n") if e.strip()]
        if st != 200 or len(events) != 64 or b'"finishReason"' not in events[-1]:
            raise RuntimeError(f"mock stream: status {st}, {len(events)} events")
        st, data = procs.http_status(
            f"{self.url}/v1/chat/completions",
            method="POST",
            body=b'{"model":"bench-model","messages":[],"stream":true}',
        )
        if st != 200 or not data.rstrip().endswith(b"data: [DONE]"):
            raise RuntimeError(f"mock OpenAI stream: status {st}")
        st, data = procs.http_status(
            f"{self.url}/v1/chat/completions", method="POST", body=b'{"model":"bench-model"}'
        )
        if st != 200 or "usage" not in json.loads(data):
            raise RuntimeError(f"mock OpenAI: status {st}")
