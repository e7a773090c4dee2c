"""``python -m bench.upload``: the gateway's memory while it takes one large upload.

Starts a gateway (SQLite, files in a temporary directory, no model loaded: one Gemini
provider that is never called), creates a key, uploads a file of ``--size-mb`` (2048 by
default) with the resumable protocol in 8 MiB chunks exactly as the google-genai SDK does,
and samples the gateway's resident memory every 20 ms. Prints and writes (``--out``,
default ``bench/out/upload.json``) the peak RSS growth over the idle baseline, the
throughput, and whether the stored bytes match. Not part of ``python -m bench``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

MB = 1024 * 1024
CHUNK = 8 * MB

CONFIG = """
[server]
host = "127.0.0.1"
port = {port}

[database]
url = "sqlite:///{dir}/gemgate.db"

[files]
dir = "{dir}/files"

[[providers]]
name = "upstream"
type = "gemini"
base_url = "http://127.0.0.1:9"

[[models]]
id = "gemini-2.5-flash"
provider = "upstream"
"""


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(size_mb: int, workdir: Path) -> dict[str, object]:
    port = _port()
    config = workdir / "gemgate.toml"
    config.write_text(CONFIG.format(port=port, dir=workdir))
    gemgate = [sys.executable, "-m", "gemgate"]
    log = (workdir / "gateway.log").open("wb")
    proc = subprocess.Popen([*gemgate, "serve", "--config", str(config)], cwd=workdir, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        key = subprocess.run(
            [*gemgate, "keys", "create", "bench-upload", "--config", str(config)],
            capture_output=True, text=True, check=True,
        ).stdout.strip().splitlines()[-1]
        size = size_mb * MB
        time.sleep(1.0)
        baseline = max(_rss(proc.pid) for _ in range(10))
        samples: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                samples.append(_rss(proc.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        with httpx.Client(timeout=300) as http:
            start = http.post(
                f"{base}/upload/v1beta/files",
                headers={"x-goog-api-key": key, "X-Goog-Upload-Protocol": "resumable",
                         "X-Goog-Upload-Command": "start", "X-Goog-Upload-Header-Content-Length": str(size),
                         "X-Goog-Upload-Header-Content-Type": "application/octet-stream"},
                json={"file": {"display_name": "bench"}},
            )
            url = start.headers["x-goog-upload-url"]
            block = os.urandom(MB)
            digest = hashlib.sha256()
            offset = 0
            answer = None
            while offset < size:
                length = min(CHUNK, size - offset)
                chunk = (block * (length // MB + 1))[:length]
                digest.update(chunk)
                command = "upload, finalize" if offset + length >= size else "upload"
                answer = http.post(url, content=chunk, headers={
                    "X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)})
                answer.raise_for_status()
                offset += length
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
        assert answer is not None
        file = answer.json()["file"]
        import base64

        matches = base64.b64decode(file["sha256Hash"]).decode() == digest.hexdigest()
        peak = max(samples)
        return {
            "file_mib": size_mb,
            "rss_idle_mib": round(baseline / MB, 1),
            "rss_peak_mib": round(peak / MB, 1),
            "rss_peak_growth_mib": round((peak - baseline) / MB, 1),
            "seconds": round(seconds, 2),
            "mib_per_s": round(size_mb / seconds, 1),
            "sha256_matches": matches,
            "samples": len(samples),
        }
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.upload", description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=2048)
    parser.add_argument("--out", type=Path, default=Path("bench/out/upload.json"))
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gemgate-upload-"))
    try:
        result = run(args.size_mb, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name, value in result.items():
        print(f"{name:22} {value}")
    return 0 if result["sha256_matches"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
