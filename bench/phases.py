"""The measurements. Each phase walks the targets (direct-to-mock first, then each gateway)
round by round, so slow drift of the machine affects every target alike.

A target that fails in a phase gets ``{"error": ...}`` for that phase and the run goes on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import loadgen, procs
from bench.gateway import FAILOVER_MODEL, REFUSING_PROVIDER, Gateway
from bench.stats import summarize

GEN_BODY = json.dumps(
    {
        "contents": [
            {"role": "user", "parts": [{"text": "Write one short sentence about load tests."}]}
        ],
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.5},
    },
    separators=(",", ":"),
)
BASE_MODEL = "bench-model"
FAILOVER_SUFFIX = "_failover"  # target name of a gateway's failover model: governed_failover


def stream_model(delay_us: int) -> str:
    """The mock reads the per-event delay from a model name ending in -d<microseconds>."""
    return f"{BASE_MODEL}-d{delay_us}"


@dataclass
class Options:
    quick: bool = False
    duration_s: int = 10  # seconds of load per target for each wrk measurement
    rounds: int = 2  # interleaved rounds the duration is split into
    wrk_threads: int = 1
    stream_delay_us: int = 1000  # per-event delay for TTFE / gap measurement
    stream_count: int = 25  # sequential streams per target per round
    hold_levels: tuple[int, ...] = (100, 250, 500, 1000)
    hold_delay_us: int = 100_000  # per-event delay while holding many streams open
    mem_first: int = 10_000
    mem_total: int = 100_000
    mem_settle_s: float = 5.0
    mem_connections: int = 32
    local_rounds: int = 3
    local_tokens: int = 128
    local_n_ctx: int = 2048
    # One core fewer than the machine has: llama.cpp's OpenMP threads spin at barriers, so
    # with every core busy the gateway's event loop (or anything else) stalls them.
    local_threads: int = field(default_factory=lambda: max(1, (os.cpu_count() or 2) - 1))

    @classmethod
    def quick_mode(cls) -> Options:
        return cls(
            quick=True,
            duration_s=1,
            rounds=1,
            stream_delay_us=1000,
            stream_count=5,
            hold_levels=(20,),
            hold_delay_us=20_000,
            mem_first=200,
            mem_total=2_000,
            mem_settle_s=1.0,
            local_rounds=1,
            local_tokens=16,
        )

    @property
    def slice_s(self) -> int:
        return max(1, round(self.duration_s / max(1, self.rounds)))


@dataclass
class Target:
    """Something to send requests to: the mock itself, or a gateway in front of it."""

    name: str
    base_url: str
    headers: dict[str, str]
    gateway: Gateway | None = None
    failed: str | None = None  # set when the target became unusable
    model: str = BASE_MODEL  # what the wrk phases ask for

    def gen_url(self, model: str | None = None) -> str:
        return f"{self.base_url}/v1beta/models/{model or self.model}:generateContent"

    def stream_url(self, model: str) -> str:
        return f"{self.base_url}/v1beta/models/{model}:streamGenerateContent?alt=sse"

    def usable(self) -> bool:
        if self.failed:
            return False
        if self.gateway is not None and not self.gateway.alive():
            self.failed = "gateway process exited"
            return False
        return True


@dataclass
class Context:
    opts: Options
    out: Path
    targets: list[Target]
    stream_client: Any = None  # bench.streamclient.StreamClient
    errors: list[str] = field(default_factory=list)
    failover: list[Target] = field(default_factory=list)  # see failover_target

    def say(self, msg: str) -> None:
        print(f"[bench] {msg}", flush=True)

    def guarded(
        self, phase: str, target: Target, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Run ``fn(*args, **kwargs)``; on failure record it and return {"error": ...}."""
        if not target.usable():
            return {"error": f"skipped: {target.failed}"}
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            msg = f"{phase}/{target.name}: {type(exc).__name__}: {exc}"
            if target.gateway is not None and not target.gateway.alive():
                target.failed = "gateway process exited"
                msg += "\n  gateway log tail:\n" + target.gateway.log_tail()
            self.errors.append(msg)
            self.say("ERROR " + msg)
            (self.out / "errors.log").open("a").write(msg + "\n" + traceback.format_exc() + "\n")
            return {"error": f"{type(exc).__name__}: {exc}"}

    def script(self, name: str) -> Path:
        return self.out / "wrk" / f"{name}.lua"


# --- sanity ------------------------------------------------------------------------------------

_EVENT_SPLIT = re.compile(rb"\r?\n\r?\n")


def sanity_check(target: Target, stream_delay_us: int) -> dict[str, Any]:
    """One plain and one streamed request must come back complete before anything is timed."""
    st, data = procs.http_status(
        target.gen_url(), method="POST", body=GEN_BODY.encode(), headers=target.headers, timeout=30
    )
    if st != 200:
        raise RuntimeError(f"generateContent answered {st}: {data[:300]!r}")
    doc = json.loads(data)
    if "candidates" not in doc or "usageMetadata" not in doc:
        raise RuntimeError(f"generateContent body lacks candidates/usageMetadata: {data[:300]!r}")
    st, data = procs.http_status(
        target.stream_url(stream_model(stream_delay_us)),
        method="POST",
        body=GEN_BODY.encode(),
        headers=target.headers,
        timeout=60,
    )
    events = [e for e in _EVENT_SPLIT.split(data) if e.strip()]
    if st != 200 or len(events) != 64 or b"finishReason" not in events[-1]:
        raise RuntimeError(
            f"streamGenerateContent: status {st}, {len(events)} events: {data[:300]!r}"
        )
    return {"ok": True, "stream_events": len(events)}


# --- failover -------------------------------------------------------------------------------------


def failover_target(t: Target) -> Target:
    """The same gateway asked for its failover model (see :mod:`bench.gateway`): each request
    first tries a channel whose connections are refused, then the mock."""
    return Target(
        t.name + FAILOVER_SUFFIX, t.base_url, t.headers, gateway=t.gateway, model=FAILOVER_MODEL
    )


def failover_counts(t: Target) -> dict[str, int]:
    """The gateway's counters for the failover model's two channels."""
    assert t.gateway is not None
    rows = t.gateway.channels(FAILOVER_MODEL)
    refusing, mock = rows.get(REFUSING_PROVIDER), rows.get("mock")
    if refusing is None or mock is None:
        raise RuntimeError(f"{FAILOVER_MODEL} lacks its channels: {sorted(rows)}")
    if refusing.get("circuit") != "closed":
        raise RuntimeError(f"the refusing channel's circuit is {refusing.get('circuit')}")
    return {
        "refused": int(refusing["failures"]),
        "refusing_successes": int(refusing["successes"]),
        "answered": int(mock["successes"]),
        "mock_failures": int(mock["failures"]),
    }


def failover_sanity(t: Target) -> dict[str, Any]:
    """One request to the failover model must be answered by the mock after one refused
    attempt, before anything is timed."""
    before = failover_counts(t)
    st, data = procs.http_status(
        t.gen_url(), method="POST", body=GEN_BODY.encode(), headers=t.headers, timeout=30
    )
    if st != 200 or b"candidates" not in data:
        raise RuntimeError(f"{FAILOVER_MODEL} generateContent answered {st}: {data[:300]!r}")
    delta = _delta(before, failover_counts(t))
    if delta["refused"] != 1 or delta["answered"] != 1:
        raise RuntimeError(f"one request to {FAILOVER_MODEL} did not fail over once: {delta}")
    return {"ok": True, **delta}


def failover_summary(t: Target, before: dict[str, int], latency: dict[str, Any]) -> dict[str, Any]:
    """Whether every request the failover measurement made really failed over: each one the
    mock answered behind the gateway was refused by the first channel first."""
    delta = _delta(before, failover_counts(t))
    answered = delta["answered"]
    out: dict[str, Any] = {
        "target": t.name,
        "model": FAILOVER_MODEL,
        "wrk_requests": latency.get("requests"),
        **delta,
        "share_failed_over": delta["refused"] / answered if answered else None,
    }
    if answered == 0 or delta["refused"] < answered or delta["refusing_successes"]:
        raise RuntimeError(f"not every request to {FAILOVER_MODEL} failed over: {out}")
    return out


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before[k] for k in after}


def with_failover(targets: list[Target], failover: list[Target]) -> list[Target]:
    """``targets`` with each failover target right after its gateway's normal one, so the
    two are measured back to back in every round."""
    out: list[Target] = []
    for t in targets:
        out.append(t)
        out += [f for f in failover if f.name == t.name + FAILOVER_SUFFIX]
    return out


# --- wrk phases ---------------------------------------------------------------------------------


def _wrk_rounds(
    ctx: Context, phase: str, connections: int, targets: list[Target] | None = None
) -> dict[str, Any]:
    opts = ctx.opts
    targets = ctx.targets if targets is None else targets
    runs: dict[str, list[loadgen.WrkResult]] = {t.name: [] for t in targets}
    failures: dict[str, Any] = {}
    for rnd in range(opts.rounds):
        for t in targets:
            if t.name in failures:
                continue
            ctx.say(
                f"{phase}: round {rnd + 1}/{opts.rounds} {t.name} c={connections} {opts.slice_s}s"
            )
            res = ctx.guarded(
                phase,
                t,
                loadgen.run_wrk,
                t.gen_url(),
                body=GEN_BODY,
                headers=t.headers,
                connections=connections,
                threads=opts.wrk_threads,
                duration_s=opts.slice_s,
                script_path=ctx.script(f"{phase}-{t.name}"),
            )
            if isinstance(res, dict):
                failures[t.name] = res
            else:
                runs[t.name].append(res)
    out: dict[str, Any] = {}
    for t in targets:
        out[t.name] = failures.get(t.name) or loadgen.merge(runs[t.name])
        if t.name not in failures:
            out[t.name]["per_run"] = [r.to_json() for r in runs[t.name]]
    return out


def warmup(ctx: Context) -> None:
    for t in with_failover(ctx.targets, ctx.failover):
        ctx.guarded(
            "warmup",
            t,
            loadgen.run_wrk,
            t.gen_url(),
            body=GEN_BODY,
            headers=t.headers,
            connections=8,
            duration_s=1,
            script_path=ctx.script(f"warmup-{t.name}"),
        )


def latency_c1(ctx: Context, targets: list[Target] | None = None) -> dict[str, Any]:
    return _wrk_rounds(ctx, "latency_c1", 1, targets)


def latency_with_failover(
    ctx: Context, *, all_targets: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    """c=1 latency of every target (or, with ``all_targets`` false, only of the gateways
    that have a failover target) and of each failover target right after its gateway's
    normal model in the same rounds; then (latency results, failover check per target)."""
    base = ctx.targets
    if not all_targets:
        names = {f.name.removesuffix(FAILOVER_SUFFIX) for f in ctx.failover}
        base = [t for t in ctx.targets if t.name in names]
    before: dict[str, dict[str, int]] = {}
    for f in ctx.failover:
        got = ctx.guarded("failover", f, failover_counts, f)
        if "error" not in got:
            before[f.name] = got
    fo_targets = [f for f in ctx.failover if f.name in before]
    lat = latency_c1(ctx, with_failover(base, fo_targets))
    checks: dict[str, Any] = {}
    for f in fo_targets:
        if "error" in lat.get(f.name, {}):
            checks[f.name] = {"error": lat[f.name]["error"]}
            continue
        checks[f.name] = ctx.guarded(
            "failover", f, failover_summary, f, before[f.name], lat[f.name]
        )
    return lat, checks


def throughput(ctx: Context, connections: int) -> dict[str, Any]:
    return _wrk_rounds(ctx, f"throughput_c{connections}", connections)


# --- streaming ------------------------------------------------------------------------------------


def stream_latency(ctx: Context) -> dict[str, Any]:
    """Sequential streams (concurrency 1): time to first event and the gaps between events."""
    opts = ctx.opts
    model = stream_model(opts.stream_delay_us)
    ttfe: dict[str, list[float]] = {t.name: [] for t in ctx.targets}
    gaps: dict[str, list[float]] = {t.name: [] for t in ctx.targets}
    errs: dict[str, int] = {t.name: 0 for t in ctx.targets}
    kinds: dict[str, dict[str, int]] = {t.name: {} for t in ctx.targets}
    failures: dict[str, Any] = {}
    per_stream_s = 64 * opts.stream_delay_us / 1e6
    for rnd in range(opts.rounds):
        for t in ctx.targets:
            if t.name in failures:
                continue
            ctx.say(
                f"stream_latency: round {rnd + 1}/{opts.rounds} {t.name} {opts.stream_count} streams"
            )
            spec = {
                "url": t.stream_url(model),
                "headers": t.headers,
                "body": GEN_BODY,
                "streams": opts.stream_count,
                "concurrency": 1,
                "timeout_s": 30 + per_stream_s * 4,
                "raw": True,
            }
            res = ctx.guarded(
                "stream_latency",
                t,
                ctx.stream_client.run,
                spec,
                timeout=60 + opts.stream_count * (per_stream_s + 5),
            )
            if "error" in res:
                failures[t.name] = res
                continue
            ttfe[t.name] += res.get("ttfe_raw_us", [])
            gaps[t.name] += res.get("gap_raw_us", [])
            errs[t.name] += res["errors"]
            for k, v in res.get("error_kinds", {}).items():
                kinds[t.name][k] = kinds[t.name].get(k, 0) + v
    out: dict[str, Any] = {"delay_us": opts.stream_delay_us, "events_per_stream": 64}
    for t in ctx.targets:
        if t.name in failures:
            out[t.name] = failures[t.name]
            continue
        out[t.name] = {
            "streams": opts.stream_count * opts.rounds,
            "errors": errs[t.name],
            "error_kinds": kinds[t.name],
            "ttfe_us": summarize(ttfe[t.name]),
            "gap_us": summarize(gaps[t.name]),
        }
    return out


def stream_hold(ctx: Context) -> dict[str, Any]:
    """Many streams open at once, level by level; a target stops at its first level with errors."""
    opts = ctx.opts
    model = stream_model(opts.hold_delay_us)
    per_stream_s = 64 * opts.hold_delay_us / 1e6
    levels: dict[str, list[dict[str, Any]]] = {t.name: [] for t in ctx.targets}
    stopped: set[str] = set()
    for level in opts.hold_levels:
        for t in ctx.targets:
            if t.name in stopped:
                continue
            ramp = min(2.0, level / 500.0)
            ctx.say(f"stream_hold: {t.name} {level} concurrent streams")
            spec = {
                "url": t.stream_url(model),
                "headers": t.headers,
                "body": GEN_BODY,
                "streams": level,
                "concurrency": level,
                "ramp_s": ramp,
                "timeout_s": per_stream_s * 3 + 30,
            }
            peak: dict[str, int] = {}

            def sample(gw: Gateway | None = t.gateway, peak: dict[str, int] = peak) -> None:
                if gw is not None:
                    for k, v in gw.memory().items():
                        peak[k] = max(peak.get(k, 0), v)

            res = ctx.guarded(
                "stream_hold",
                t,
                ctx.stream_client.run,
                spec,
                timeout=per_stream_s * 4 + 120,
                while_waiting=sample,
            )
            res["level"] = level
            if t.gateway is not None:
                res["gateway_peak_memory_kb"] = peak
            levels[t.name].append(res)
            if "error" in res or res.get("errors", 1) > 0:
                stopped.add(t.name)
    out: dict[str, Any] = {"delay_us": opts.hold_delay_us, "levels_tried": list(opts.hold_levels)}
    for t in ctx.targets:
        ok = [lv["level"] for lv in levels[t.name] if "error" not in lv and lv.get("errors") == 0]
        out[t.name] = {"held": max(ok) if ok else 0, "levels": levels[t.name]}
    return out


# --- memory ---------------------------------------------------------------------------------------


def memory(ctx: Context, t: Target, idle_kb: dict[str, int]) -> dict[str, Any]:
    """RSS idle, after the first ``mem_first`` requests, after ``mem_total``, and after the load
    stops. wrk runs in 1-second slices until each request count is reached."""
    assert t.gateway is not None
    opts = ctx.opts
    gw = t.gateway
    done = 0
    errors = 0
    readings: dict[str, Any] = {"idle": idle_kb}
    for label, goal in (("after_first", opts.mem_first), ("after_all", opts.mem_total)):
        while done < goal:
            r = loadgen.run_wrk(
                t.gen_url(),
                body=GEN_BODY,
                headers=t.headers,
                connections=opts.mem_connections,
                threads=opts.wrk_threads,
                duration_s=1,
                script_path=ctx.script(f"memory-{t.name}"),
            )
            done += r.requests
            errors += r.error_total
            if r.requests == 0:
                raise RuntimeError("no requests completed in a 1 s slice")
        readings[label] = {**gw.memory(), "requests": done}
    time.sleep(opts.mem_settle_s)
    readings["after_stop"] = {**gw.memory(), "requests": done, "settle_s": opts.mem_settle_s}
    first = readings["after_first"]["rss_kb"]
    all_ = readings["after_all"]["rss_kb"]
    readings["growth_pct"] = (all_ - first) / first * 100.0 if first else None
    readings["errors"] = errors
    readings["first_goal"] = opts.mem_first
    readings["total_goal"] = opts.mem_total
    return readings


def wait_quiet(seconds: float) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        time.sleep(seconds)
