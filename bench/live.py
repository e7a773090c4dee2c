"""The Live API benchmark: ``python -m bench.live`` (not part of the default run).

Two figures, against a mock Google Live upstream (:mod:`bench.live_mock`, its own process)
and one gateway worker in each mode (proxy: authentication only; governed: budget
reservation per turn and a durable usage record per turn):

* added latency per turn: one session, turns one after another, from sending a
  ``clientContent`` with ``turnComplete`` to receiving the frame with ``turnComplete``
  (and the turn's ``usageMetadata``), through the gateway and directly to the mock, in
  interleaved rounds;
* concurrent sessions one worker holds: N sessions opened and held at once through the
  governed gateway, then one turn in each, all at the same time; errors counted, turn
  latency and the worker's memory reported.

Writes ``bench/out/live.json`` and prints a table. ``--sessions`` (default 1000),
``--turns`` (default 300 per round), ``--rounds`` (default 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import websockets

from bench import procs
from bench.gateway import Gateway
from bench.stats import summarize

LIVE_PATH = "/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"
MODEL = "bench-live"
OUT = Path(__file__).parent / "out"
TURN = json.dumps({"clientContent": {"turns": [{"role": "user", "parts": [{"text": "hello live"}]}],
                                      "turnComplete": True}})
SETUP = json.dumps({"setup": {"model": f"models/{MODEL}", "generationConfig": {
    "responseModalities": ["TEXT"], "maxOutputTokens": 64}}})
OPEN_AT_ONCE = 100
# One key holds every session (the default limit is 10 per key).
LIVE_TOML = "[live]\nmax_sessions_per_key = 0\n"


class Session:
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    @classmethod
    async def open(cls, base: str, key: str | None) -> Session:
        headers = {"x-goog-api-key": key} if key else {}
        ws = await websockets.connect(base.replace("http", "ws") + LIVE_PATH, additional_headers=headers,
                                      max_size=None, ping_interval=None, open_timeout=60)
        await ws.send(SETUP)
        reply = await ws.recv()
        if b"setupComplete" not in (reply if isinstance(reply, bytes) else reply.encode()):
            raise RuntimeError(f"setup answered {reply[:200]!r}")
        return cls(ws)

    async def turn(self) -> float:
        """Seconds from the turn's last client byte to its turnComplete."""
        started = time.perf_counter()
        await self.ws.send(TURN)
        while True:
            frame = await self.ws.recv()
            if (b"turnComplete" if isinstance(frame, bytes) else "turnComplete") in frame:
                return time.perf_counter() - started

    async def close(self) -> None:
        await self.ws.close()


async def sequential_turns(base: str, key: str | None, turns: int) -> list[float]:
    session = await Session.open(base, key)
    try:
        for _ in range(20):  # warm-up
            await session.turn()
        return [await session.turn() for _ in range(turns)]
    finally:
        await session.close()


async def held_sessions(base: str, key: str, n: int, gw: Gateway) -> dict[str, Any]:
    gate = asyncio.Semaphore(OPEN_AT_ONCE)
    errors: list[str] = []

    async def opened() -> Session | None:
        async with gate:
            try:
                return await Session.open(base, key)
            except Exception as exc:
                errors.append(f"open: {type(exc).__name__}: {exc}"[:200])
                return None

    started = time.perf_counter()
    sessions = [s for s in await asyncio.gather(*(opened() for _ in range(n))) if s is not None]
    open_s = time.perf_counter() - started
    memory = gw.memory()

    async def one(session: Session) -> float | None:
        try:
            return await session.turn()
        except Exception as exc:
            errors.append(f"turn: {type(exc).__name__}: {exc}"[:200])
            return None

    started = time.perf_counter()
    latencies = [t for t in await asyncio.gather(*(one(s) for s in sessions)) if t is not None]
    turns_s = time.perf_counter() - started
    still_open = sum(1 for s in sessions if s.ws.state.name == "OPEN")
    await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
    return {
        "requested": n,
        "opened": len(sessions),
        "turns_ok": len(latencies),
        "held_open_after_turns": still_open,
        "errors": len(errors),
        "error_samples": errors[:5],
        "open_all_s": open_s,
        "all_turns_s": turns_s,
        "turn_latency_ms": {k: v * 1000 if k != "n" else v for k, v in summarize(latencies).items()},
        "gateway_rss_mib": memory.get("rss_kb", 0) / 1024,
    }


def _ms(values: list[float]) -> dict[str, float]:
    return {k: (v * 1000 if k != "n" else v) for k, v in summarize(values).items()}


async def measure(args: argparse.Namespace, mock_url: str, gateways: dict[str, Gateway]) -> dict[str, Any]:
    samples: dict[str, list[float]] = {"direct": [], **{m: [] for m in gateways}}
    for _ in range(args.rounds):
        samples["direct"] += await sequential_turns(mock_url, None, args.turns)
        for mode, gw in gateways.items():
            samples[mode] += await sequential_turns(gw.base_url, gw.key, args.turns)
    latency = {name: _ms(values) for name, values in samples.items()}
    held = await held_sessions(gateways["governed"].base_url, gateways["governed"].key,
                               args.sessions, gateways["governed"])
    return {"turn_latency_ms": latency, "held_sessions": held}


def table(result: dict[str, Any]) -> str:
    lat = result["turn_latency_ms"]
    rows = ["| per-turn latency (ms) | direct | proxy | governed | added (proxy / governed) |",
            "|---|---:|---:|---:|---:|"]
    for q in ("p50", "p99"):
        d, p, g = lat["direct"][q], lat["proxy"][q], lat["governed"][q]
        rows.append(f"| {q} | {d:.3f} | {p:.3f} | {g:.3f} | +{p - d:.3f} / +{g - d:.3f} |")
    held = result["held_sessions"]
    rows += ["", "| concurrent sessions (one governed worker) | |", "|---|---:|"]
    rows.append(f"| sessions opened and held / asked | {held['opened']:,} / {held['requested']:,} |")
    rows.append(f"| one turn in every session at once: completed | {held['turns_ok']:,} |")
    rows.append(f"| errors | {held['errors']} |")
    rows.append(f"| turn latency under that load p50 / p99 (ms) | {held['turn_latency_ms'].get('p50', 0):.1f} / "
                f"{held['turn_latency_ms'].get('p99', 0):.1f} |")
    rows.append(f"| time to open all sessions (s) | {held['open_all_s']:.2f} |")
    rows.append(f"| worker RSS while holding them (MiB) | {held['gateway_rss_mib']:.0f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.live", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    procs.install_signal_handlers()
    procs.raise_fd_limit()
    OUT.mkdir(exist_ok=True)
    port = procs.free_port()
    mock = procs.spawn([sys.executable, "-m", "bench.live_mock", str(port)],
                       log=OUT / "logs" / "live_mock.log", cwd=Path(__file__).parent.parent)
    mock_url = f"http://127.0.0.1:{port}"
    procs.wait_until(lambda: procs.port_open(port), timeout=30, proc=mock, what="the Live mock")
    gateways = {
        mode: Gateway(name=f"live-{mode}", mode=mode, workers=1, workdir=OUT / "gateways" / f"live-{mode}",
                      mock_url=mock_url, models=[MODEL], extra_toml=LIVE_TOML)
        for mode in ("proxy", "governed")
    }
    try:
        for gw in gateways.values():
            gw.start()
        result = asyncio.run(measure(args, mock_url, gateways))
    finally:
        for gw in gateways.values():
            gw.stop()
        procs.stop(mock)
    result["run"] = {"at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **vars(args)}
    (OUT / "live.json").write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0 if result["held_sessions"]["errors"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
