"""An upload streams into the content store: a 300 MB body sent as ONE chunk raises the
gateway's resident memory by far less than its size, and the stored file grows while the
body is still arriving."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from tests.gateway_process import GatewayProcess

MB = 1024 * 1024
SIZE = 300 * MB


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Sampler(threading.Thread):
    def __init__(self, measure: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self.measure = measure
        self.samples: list[int] = []
        self.stop_at = threading.Event()

    def run(self) -> None:
        while not self.stop_at.is_set():
            self.samples.append(self.measure())
            time.sleep(0.02)


def test_a_300_mb_upload_is_never_held_in_memory(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    assert resource_gw.proc is not None
    pid = resource_gw.proc.pid
    key = make_key()
    started = httpx.post(
        f"{resource_gw.base_url}/upload/v1beta/files",
        headers={"x-goog-api-key": key, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                 "X-Goog-Upload-Header-Content-Length": str(SIZE),
                 "X-Goog-Upload-Header-Content-Type": "application/octet-stream"},
    )
    url = started.headers["x-goog-upload-url"]
    block = hashlib.sha256(b"seed").digest() * (MB // 32)
    digest = hashlib.sha256()
    stored_sizes: list[int] = []
    store = resource_gw.workdir / "files"
    before = {p for p in store.rglob("*") if p.is_file()}

    def body() -> Iterator[bytes]:
        for i in range(SIZE // MB):
            digest.update(block)
            if i % 25 == 0:
                new = [p for p in store.rglob("*") if p.is_file() and p not in before]
                stored_sizes.append(new[0].stat().st_size if new else 0)
            yield block

    baseline = max(rss_bytes(pid) for _ in range(5))
    sampler = Sampler(lambda: rss_bytes(pid))
    sampler.start()
    try:
        resp = httpx.post(
            url, content=body(), timeout=120,
            headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "0",
                     "Content-Length": str(SIZE)},
        )
    finally:
        sampler.stop_at.set()
        sampler.join()
    assert resp.status_code == 200, resp.text
    file = resp.json()["file"]
    assert file["sizeBytes"] == str(SIZE)
    growth = max(sampler.samples) - baseline
    assert growth < 64 * MB, f"RSS grew by {growth / MB:.0f} MiB for a {SIZE // MB} MiB upload"
    # The store received it in pieces, while the body was still arriving.
    assert any(0 < s < SIZE for s in stored_sizes), stored_sizes
    httpx.delete(f"{resource_gw.base_url}/v1beta/{file['name']}", headers={"x-goog-api-key": key})
