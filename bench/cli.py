"""``python -m bench [--quick] [--duration S] [--out DIR] [--only mock|gateway|all] ...``

One command: install wrk/gcc if missing, build and start the mock upstream, start the gateway
in front of it (pure proxy, governed, and governed with two workers), measure everything
interleaved (including, on the governed gateway, requests that fail over from a channel
that refuses connections), and write ``report.json`` and ``report.md``. Exit status 0 when the report was
written and nothing failed, 1 when some measurement failed (the report says which), 2 when
the harness could not run at all.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import install, localmodel, phases, procs, report
from bench.gateway import Gateway, LocalModelSpec, gateway_available
from bench.phases import Context, Options, Target
from bench.upstream import MockUpstream

ALL_PHASES = ("memory", "latency", "failover", "throughput", "stream", "hold", "local")
GATEWAY_TARGETS = {  # target name -> (mode, workers)
    "proxy": ("proxy", 1),
    "governed": ("governed", 1),
    "governed_w2": ("governed", 2),
}
FAILOVER_GATEWAYS = ("governed",)  # whose failover model is measured (every gateway serves it)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[1])
    p.add_argument("--quick", action="store_true", help="smoke run: tiny durations, < 60 s in all")
    p.add_argument(
        "--duration",
        type=int,
        default=None,
        help="seconds of load per target per wrk measurement (default 10; quick 1)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="interleaved rounds the duration is split into (default 2; quick 1)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "out",
        help="output directory (default bench/out/)",
    )
    p.add_argument(
        "--only",
        choices=("all", "mock", "gateway"),
        default="all",
        help="mock: the direct baseline only; gateway: skip the direct target",
    )
    p.add_argument(
        "--phases", default=",".join(ALL_PHASES), help=f"comma list of {', '.join(ALL_PHASES)}"
    )
    p.add_argument(
        "--gateways",
        default=",".join(GATEWAY_TARGETS),
        help=f"comma list of {', '.join(GATEWAY_TARGETS)}",
    )
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument("--mock-threads", type=int, default=1)
    p.add_argument(
        "--hold-levels",
        default=None,
        help="comma list of concurrent stream counts (default 100,250,500,1000; quick 20)",
    )
    p.add_argument(
        "--local-threads",
        type=int,
        default=None,
        help="llama.cpp threads for the local-model comparison, both sides (default: CPUs - 1)",
    )
    p.add_argument(
        "--local-tokens", type=int, default=None, help="maxOutputTokens (default 128; quick 16)"
    )
    p.add_argument("--no-install", action="store_true", help="never run apt-get")
    return p.parse_args(argv)


def options_from(args: argparse.Namespace) -> Options:
    opts = Options.quick_mode() if args.quick else Options()
    if args.duration is not None:
        opts.duration_s = max(1, args.duration)
    if args.rounds is not None:
        opts.rounds = max(1, args.rounds)
    opts.wrk_threads = max(1, args.wrk_threads)
    if args.local_threads is not None:
        opts.local_threads = max(1, args.local_threads)
    if args.local_tokens is not None:
        opts.local_tokens = max(1, args.local_tokens)
    if args.hold_levels:
        opts.hold_levels = tuple(int(x) for x in args.hold_levels.split(",") if x.strip())
    return opts


def _loadavg() -> list[float]:
    """1, 5 and 15 minute load averages: other work on the machine skews every figure."""
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def _machine() -> dict[str, Any]:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {
        "loadavg_start": _loadavg(),
        "cpus": os.cpu_count() or 0,
        "memory_gib": mem_kb / 1024 / 1024,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    opts = options_from(args)
    wanted = {p.strip() for p in args.phases.split(",") if p.strip()}
    unknown = wanted - set(ALL_PHASES)
    if unknown:
        print(f"unknown phase(s): {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    gw_names = [g.strip() for g in args.gateways.split(",") if g.strip()]
    if set(gw_names) - set(GATEWAY_TARGETS):
        print(
            f"unknown gateway(s): {', '.join(sorted(set(gw_names) - set(GATEWAY_TARGETS)))}",
            file=sys.stderr,
        )
        return 2
    if args.only == "mock":
        gw_names = []
        wanted.discard("memory")
        wanted.discard("failover")
        wanted.discard("local")

    out: Path = args.out.resolve()
    if out.exists():
        for name in ("report.json", "report.md", "errors.log"):
            (out / name).unlink(missing_ok=True)
        for sub in ("logs", "wrk", "gateways"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    procs.install_signal_handlers()
    fd_limit = procs.raise_fd_limit()
    started = time.monotonic()
    meta: dict[str, Any] = {
        "started": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "quick": opts.quick,
        "only": args.only,
        "phases": sorted(wanted),
        "gateways": gw_names,
        "duration_s": opts.duration_s,
        "rounds": opts.rounds,
        "wrk_threads": opts.wrk_threads,
        "mock_threads": args.mock_threads,
        "fd_limit": fd_limit,
        "options": {k: v for k, v in vars(opts).items()},
        **_machine(),
    }
    results: dict[str, Any] = {}
    errors: list[str] = []
    gateways: dict[str, Gateway] = {}
    # Held open for the whole run: the port where the failover model's first channel is
    # refused at once (bound, never listening, so nothing else can take it).
    refusing_sock, refusing_port = procs.refusing_port()
    refusing_url = f"http://127.0.0.1:{refusing_port}"
    try:
        try:
            versions = install.ensure_tools(install=not args.no_install)
            meta["wrk"] = versions.get("wrk", "")
            meta["gcc"] = versions.get("gcc", "")
            binary = install.build_mock()
        except (install.SetupError, OSError, TimeoutError) as exc:
            print(f"[bench] cannot run: {exc}", file=sys.stderr)
            return 2

        logs = out / "logs"
        mock = MockUpstream(binary=binary, log=logs / "mock.log", threads=args.mock_threads)
        mock.start()
        mock.self_check()
        say(f"mock upstream on {mock.url}")

        targets: list[Target] = []
        if args.only != "gateway":
            targets.append(Target("direct", mock.url, {}))
        ctx = Context(opts=opts, out=out, targets=targets, errors=errors)

        models = [
            phases.BASE_MODEL,
            phases.stream_model(opts.stream_delay_us),
            phases.stream_model(opts.hold_delay_us),
        ]
        idle: dict[str, dict[str, int]] = {}
        gw_status: dict[str, Any] = {}
        if gw_names:
            ok, why = gateway_available()
            if not ok:
                msg = f"gateway unavailable: {why}"
                say(msg)
                ctx.errors.append(msg)
                for g in gw_names:
                    gw_status[g] = {"error": msg}
                gw_names = []
        launched: list[tuple[str, Gateway]] = []
        for g in gw_names:  # launch all, then wait for all: start-ups overlap
            mode, workers = GATEWAY_TARGETS[g]
            gw = Gateway(
                name=g,
                mode=mode,
                workers=workers,
                workdir=out / "gateways" / g,
                mock_url=mock.url,
                models=models,
                refusing_url=refusing_url if "failover" in wanted else None,
            )
            try:
                say(f"starting gateway {g} ({mode}, {workers} worker(s))")
                gw.launch()
                launched.append((g, gw))
            except Exception as exc:
                _gateway_failed(ctx, gw_status, g, gw, exc)
        for g, gw in launched:
            t = Target(g, gw.base_url, {}, gateway=gw)
            try:
                gw.wait_ready()
                t.headers = gw.headers
                phases.sanity_check(t, opts.stream_delay_us)
            except Exception as exc:
                _gateway_failed(ctx, gw_status, g, gw, exc)
                continue
            gateways[g] = gw
            targets.append(t)
            gw_status[g] = {
                "ok": True,
                "port": gw.port,
                "startup_s": round(gw.startup_s, 2),
                "workers": gw.workers,
                "mode": gw.mode,
            }
            if "failover" in wanted and g in FAILOVER_GATEWAYS:
                ft = phases.failover_target(t)
                check = ctx.guarded("failover", ft, phases.failover_sanity, ft)
                gw_status[g]["failover_sanity"] = check
                if "error" not in check:
                    ctx.failover.append(ft)
        if gateways:
            time.sleep(1.0)
        for g, gw in gateways.items():
            idle[g] = gw.memory()
            say(
                f"gateway {g} ready on {gw.base_url} in {gw.startup_s:.1f} s, RSS {idle[g]['rss_kb'] / 1024:.0f} MiB"
            )
        results["gateways"] = gw_status
        results["mock_memory"] = mock.memory()

        phase_s: dict[str, float] = meta.setdefault("phase_s", {})
        if "memory" in wanted:
            with _timed(phase_s, "memory"):
                mem: dict[str, Any] = {}
                for t in targets:
                    if t.gateway is None:
                        continue
                    say(f"memory: {t.name} up to {opts.mem_total} requests")
                    mem[t.name] = ctx.guarded("memory", t, phases.memory, ctx, t, idle[t.name])
                results["memory"] = mem
        else:
            results["memory"] = {g: {"idle": m} for g, m in idle.items()}

        if wanted & {"latency", "failover", "throughput"} and targets:
            with _timed(phase_s, "warmup"):
                phases.warmup(ctx)
        if wanted & {"latency", "failover"}:
            with _timed(phase_s, "latency"):
                lat, checks = phases.latency_with_failover(ctx, all_targets="latency" in wanted)
                results["latency_c1"] = lat
                if "failover" in wanted:
                    results["failover"] = {
                        "refusing_url": refusing_url,
                        "circuit_failures": 0,
                        "checks": checks,
                    }
        if "throughput" in wanted:
            with _timed(phase_s, "throughput"):
                results["throughput_c32"] = phases.throughput(ctx, 32)
                results["throughput_c128"] = phases.throughput(ctx, 128)
        if wanted & {"stream", "hold"} and targets:
            from bench.streamclient import StreamClient

            ctx.stream_client = StreamClient(logs / "streamclient.log")
            if "stream" in wanted:
                with _timed(phase_s, "stream"):
                    results["stream_latency"] = phases.stream_latency(ctx)
            if "hold" in wanted:
                with _timed(phase_s, "hold"):
                    results["stream_hold"] = phases.stream_hold(ctx)
            ctx.stream_client.close()
        results["final_memory"] = {g: gw.memory() for g, gw in gateways.items()}
        for g in list(gateways):
            gateways.pop(g).stop()

        if "local" in wanted:
            with _timed(phase_s, "local"):
                results["local_model"] = local_model_phase(ctx, out, mock.url)
    except KeyboardInterrupt:
        say("interrupted; writing what was measured")
        errors.append("interrupted")
    except Exception as exc:
        say(f"harness error: {type(exc).__name__}: {exc}")
        errors.append(f"harness: {type(exc).__name__}: {exc}")
        (out / "errors.log").open("a").write(traceback.format_exc() + "\n")
    finally:
        for gw in gateways.values():
            gw.stop()
        procs.stop_all()
        refusing_sock.close()

    meta["elapsed_s"] = time.monotonic() - started
    meta["loadavg_end"] = _loadavg()
    rows = report.build_rows(results)
    doc = {
        "schema": 1,
        "meta": meta,
        "results": results,
        "rows": rows,
        "targets": report.summarize_targets(rows),
        "errors": errors,
    }
    jp, mp = report.write(doc, out)
    print(mp.read_text(), flush=True)
    say(f"wrote {jp} and {mp}")
    if "interrupted" in errors:
        return 130
    return 1 if errors else 0


@contextlib.contextmanager
def _timed(into: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.monotonic()
    try:
        yield
    finally:
        into[name] = round(time.monotonic() - t0, 1)


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def _gateway_failed(
    ctx: Context, status: dict[str, Any], name: str, gw: Gateway, exc: Exception
) -> None:
    msg = f"gateway {name} failed to start or answer: {type(exc).__name__}: {exc}"
    print(f"[bench] {msg}", flush=True)
    ctx.errors.append(msg)
    status[name] = {"error": msg.splitlines()[0], "log_tail": gw.log_tail()}
    gw.stop()


def local_model_phase(ctx: Context, out: Path, mock_url: str) -> dict[str, Any]:
    """tokens/s of the local model: llama-cpp-python directly vs through the governed gateway,
    interleaved, same GGUF, context size, threads, prompt, token cap, temperature and seed."""
    opts = ctx.opts
    res: dict[str, Any] = {
        "prompt": localmodel.PROMPT,
        "max_tokens": opts.local_tokens,
        "n_ctx": opts.local_n_ctx,
        "threads": opts.local_threads,
        "temperature": 0.0,
        "seed": 1234,
    }
    direct = None
    gw = None
    try:
        path = localmodel.model_path()
        res["model_path_name"] = path.name
        spec = LocalModelSpec(
            model_path=str(path), n_ctx=opts.local_n_ctx, threads=opts.local_threads
        )
        ctx.say("local model: starting the governed gateway with the local provider")
        gw = Gateway(
            name="governed_local",
            mode="governed",
            workers=1,
            workdir=out / "gateways" / "governed_local",
            mock_url=mock_url,
            models=[phases.BASE_MODEL],
            local=spec,
        )
        gw.start()
        ctx.say("local model: loading llama-cpp-python directly")
        direct = localmodel.DirectLlama(
            path, opts.local_n_ctx, opts.local_threads, out / "logs" / "llama-direct.log"
        )
        res["direct_load_s"] = direct.load_s
        args = (localmodel.PROMPT, opts.local_tokens, 0.0, 1234)
        # one untimed run each, then interleaved timed rounds
        direct.generate(*args)
        localmodel.gateway_generate(gw.base_url, gw.headers, spec.model_id, *args)
        d_runs, g_runs = [], []
        for rnd in range(opts.local_rounds):
            ctx.say(f"local model: round {rnd + 1}/{opts.local_rounds}")
            d_runs.append(direct.generate(*args))
            g_runs.append(
                localmodel.gateway_generate(gw.base_url, gw.headers, spec.model_id, *args)
            )
        for name, runs in (("direct", d_runs), ("gateway", g_runs)):
            tokens = sum(r["tokens"] for r in runs)
            secs = sum(r["seconds"] for r in runs)
            res[name] = {
                "tokens_per_s": tokens / secs if secs else None,
                "tokens": tokens,
                "seconds": secs,
                "runs": runs,
            }
        if res["direct"]["tokens_per_s"] and res["gateway"]["tokens_per_s"]:
            res["ratio"] = res["gateway"]["tokens_per_s"] / res["direct"]["tokens_per_s"]
    except Exception as exc:
        msg = f"local_model: {type(exc).__name__}: {exc}"
        if gw is not None and gw.proc is not None and not gw.alive():
            msg += "\n  gateway log tail:\n" + gw.log_tail()
        ctx.errors.append(msg)
        ctx.say("ERROR " + msg)
        res["error"] = msg.splitlines()[0]
    finally:
        if direct is not None:
            direct.close()
        if gw is not None:
            gw.stop()
    return res
