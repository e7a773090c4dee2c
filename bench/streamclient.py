"""Streaming load client: time to first event and inter-event gaps of SSE streams.

Runs in its own process (never inside the gateway's), as a small server reading one JSON job
per line on stdin and answering one JSON line on stdout:

    {"url": ..., "headers": {...}, "body": "...", "streams": 20, "concurrency": 1,
     "ramp_s": 0, "timeout_s": 60, "expect_events": 64, "raw": true}

``concurrency`` streams are kept open at once (a new one starts when one ends) and the first
``concurrency`` start spread over ``ramp_s`` seconds. An event is complete at its blank line;
its arrival time is when the bytes that complete it were read. A stream counts as an error
when its status is not 200, it carries an ``error`` event, it has the wrong number of events,
its last event has no ``finishReason``, or it fails or times out.

Usage from the harness: :class:`StreamClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import procs
from bench.stats import summarize

_EVENT_END = re.compile(rb"\r?\n\r?\n")


class _Job:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.url: str = spec["url"]
        self.headers: dict[str, str] = {
            "Content-Type": "application/json",
            **spec.get("headers", {}),
        }
        self.body: bytes = spec.get("body", "{}").encode()
        self.streams: int = int(spec.get("streams", 1))
        self.concurrency: int = max(1, min(int(spec.get("concurrency", 1)), self.streams))
        self.ramp_s: float = float(spec.get("ramp_s", 0.0))
        self.timeout_s: float = float(spec.get("timeout_s", 60.0))
        self.expect_events: int = int(spec.get("expect_events", 64))
        self.raw: bool = bool(spec.get("raw", False))
        self.ttfe_us: list[float] = []
        self.gaps_us: list[float] = []
        self.errors: Counter[str] = Counter()
        self.ok = 0
        self.events = 0
        self.active = 0
        self.peak_active = 0


async def _one_stream(session: Any, job: _Job) -> None:
    import aiohttp

    job.active += 1
    job.peak_active = max(job.peak_active, job.active)
    gaps: list[float] = []
    ttfe = None
    try:
        t0 = time.perf_counter()
        async with session.post(job.url, data=job.body, headers=job.headers) as resp:
            if resp.status != 200:
                await resp.read()
                job.errors[f"http_{resp.status}"] += 1
                return
            pending = b""
            last_t = t0
            last_event = b""
            count = 0
            async for chunk in resp.content.iter_any():
                now = time.perf_counter()
                pending += chunk
                pos = 0
                while True:
                    m = _EVENT_END.search(pending, pos)
                    if m is None:
                        break
                    event = pending[pos : m.start()]
                    pos = m.end()
                    if not event.strip():
                        continue
                    count += 1
                    if ttfe is None:
                        ttfe = (now - t0) * 1e6
                    else:
                        gaps.append((now - last_t) * 1e6)
                    last_t = now
                    last_event = event
                    if event.startswith(b'data: {"error"'):
                        job.errors["error_event"] += 1
                        return
                if pos:
                    pending = pending[pos:]
            job.events += count
            if count != job.expect_events:
                job.errors["wrong_event_count"] += 1
                return
            if b"finishReason" not in last_event and b"finish_reason" not in last_event:
                job.errors["no_finish_reason"] += 1
                return
            job.ok += 1
            if ttfe is not None:
                job.ttfe_us.append(ttfe)
            job.gaps_us.extend(gaps)
    except TimeoutError:
        job.errors["timeout"] += 1
    except aiohttp.ClientError as exc:
        job.errors[type(exc).__name__] += 1
    except OSError as exc:
        job.errors[f"OSError_{exc.errno}"] += 1
    finally:
        job.active -= 1


async def run_job(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    job = _Job(spec)
    connector = aiohttp.TCPConnector(limit=0, force_close=False, ttl_dns_cache=None)
    timeout = aiohttp.ClientTimeout(total=job.timeout_s, sock_connect=10)
    started = time.perf_counter()
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(job.streams):
            queue.put_nowait(i)

        async def lane(idx: int) -> None:
            if job.ramp_s > 0 and job.concurrency > 1:
                await asyncio.sleep(job.ramp_s * idx / job.concurrency)
            while True:
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                await _one_stream(session, job)

        await asyncio.gather(*(lane(i) for i in range(job.concurrency)))
    wall = time.perf_counter() - started
    out: dict[str, Any] = {
        "streams": job.streams,
        "concurrency": job.concurrency,
        "ok": job.ok,
        "errors": sum(job.errors.values()),
        "error_kinds": dict(job.errors),
        "events": job.events,
        "peak_active": job.peak_active,
        "wall_s": round(wall, 3),
        "ttfe_us": summarize(job.ttfe_us),
        "gap_us": summarize(job.gaps_us),
    }
    if job.raw:
        out["ttfe_raw_us"] = [round(x, 1) for x in job.ttfe_us]
        out["gap_raw_us"] = [round(x, 1) for x in job.gaps_us]
    return out


async def _serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while True:
        line = await reader.readline()
        if not line:
            return
        try:
            result = await run_job(json.loads(line))
        except Exception as exc:  # report, keep serving
            result = {"fatal": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


def main() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve())


class StreamClient:
    """The harness's handle on a streaming client process."""

    def __init__(self, log: Path) -> None:
        self.proc = procs.spawn(
            [procs.python_exe(), "-m", "bench.streamclient"],
            log=log,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        hello = self._readline(timeout=60)
        if not hello.get("ready"):
            raise RuntimeError(f"stream client did not start: {hello}")

    def _readline(self, timeout: float) -> dict[str, Any]:
        import selectors

        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError(f"stream client gave no answer within {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"stream client exited (code {self.proc.poll()})")
        return dict(json.loads(line))

    def run(
        self,
        spec: dict[str, Any],
        timeout: float,
        while_waiting: Callable[[], None] | None = None,
        every_s: float = 0.5,
    ) -> dict[str, Any]:
        """Run one job; ``while_waiting`` is called every ``every_s`` until it is done."""
        import selectors

        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(spec) + "\n").encode())
        self.proc.stdin.flush()
        if while_waiting is not None:
            sel = selectors.DefaultSelector()
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout
            while not sel.select(every_s) and time.monotonic() < deadline:
                while_waiting()
            timeout = max(1.0, deadline - time.monotonic())
        result = self._readline(timeout=timeout)
        if "fatal" in result:
            raise RuntimeError(f"stream client: {result['fatal']}")
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        procs.stop(self.proc)


if __name__ == "__main__":
    main()
