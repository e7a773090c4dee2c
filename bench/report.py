"""Turn raw results into rows with targets, and write report.json and report.md.

Targets are judged on the governed gateway with one worker. Where one is missed, the row says
by how much.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GATEWAYS = ("proxy", "governed", "governed_w2")
FAILOVER = "governed_failover"  # the governed gateway's model whose first channel refuses
COLUMNS = ("direct", *GATEWAYS)
LABELS = {
    "direct": "direct (mock)",
    "proxy": "gateway (proxy)",
    "governed": "gateway (governed)",
    "governed_w2": "gateway (governed, N=2)",
}


@dataclass(frozen=True)
class Target:
    """``value op limit`` on the governed gateway's figure (``on``: "added", "value" or "ratio")."""

    on: str
    op: str  # "<=" or ">="
    limit: float
    unit: str
    text: str


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, int | float) and not math.isnan(float(x)):
        return float(x)
    return None


def _ms(us: Any) -> float | None:
    v = _num(us)
    return v / 1000.0 if v is not None else None


def _at(d: Any, *path: str, scale: float = 1.0) -> Callable[[str], float | None]:
    """A picker: column name -> ``d[column][path...]`` times ``scale``."""

    def pick(col: str) -> float | None:
        v = _num(_get(d, col, *path))
        return v * scale if v is not None else None

    return pick


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _judge(target: Target, figure: float | None) -> tuple[bool | None, str | None]:
    if figure is None:
        return None, "not measured"
    if target.op == "<=":
        if figure <= target.limit:
            return True, None
        over = figure - target.limit
        rel = f" ({over / target.limit * 100:.0f}% over)" if target.limit else ""
        return False, f"missed by {_fmt(over)} {target.unit}{rel}"
    if figure >= target.limit:
        return True, None
    short = target.limit - figure
    rel = f" ({short / target.limit * 100:.0f}% short)" if target.limit else ""
    return False, f"missed by {_fmt(short)} {target.unit}{rel}"


def _fmt(x: float | None, digits: int | None = None) -> str:
    if x is None:
        return "n/a"
    if digits is not None:
        return f"{x:,.{digits}f}"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 10:
        return f"{x:.1f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def build_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []

    def row(
        metric: str,
        unit: str,
        pick: Callable[[str], Any],
        *,
        added: str = "diff",  # "diff" (gateway - direct), "ratio" (gateway / direct) or "none"
        target: Target | None = None,
        direct_pick: Callable[[], Any] | None = None,
        note: str = "",
        unjudged: str | None = None,
    ) -> None:
        vals: dict[str, float | None] = {c: _num(pick(c)) for c in COLUMNS}
        if direct_pick is not None:
            vals["direct"] = _num(direct_pick())
        r: dict[str, Any] = {"metric": metric, "unit": unit, **vals}
        base = vals["direct"]
        for g in GATEWAYS:
            v = vals[g]
            if added == "diff":
                r[f"added_{g}"] = v - base if v is not None and base is not None else None
            elif added == "ratio":
                r[f"ratio_{g}"] = v / base if v is not None and base else None
        r["added_kind"] = added
        if target is not None:
            if target.on == "added":
                fig = r.get("added_governed")
            elif target.on == "ratio":  # judged in percent of direct
                ratio = r.get("ratio_governed")
                fig = ratio * 100.0 if ratio is not None else None
            else:
                fig = vals["governed"]
            met, miss = _judge(target, fig)
            if unjudged is not None and met is not True:
                met, miss = None, unjudged
            r["target"] = {
                "text": target.text,
                "on": target.on,
                "op": target.op,
                "limit": target.limit,
            }
            r["judged_figure"] = fig
            r["met"] = met
            r["miss"] = miss
        if note:
            r["note"] = note
        rows.append(r)

    lat = results.get("latency_c1", {})
    row(
        "c=1 latency p50",
        "ms",
        lambda c: _ms(_get(lat, c, "p50_us")),
        target=Target("added", "<=", 0.5, "ms", "added <= 0.5 ms"),
    )
    row(
        "c=1 latency p99",
        "ms",
        lambda c: _ms(_get(lat, c, "p99_us")),
        target=Target("added", "<=", 1.5, "ms", "added <= 1.5 ms"),
    )

    # Failover: the governed gateway's failover model against its normal one, same rounds.
    # The direct column holds the normal model here, so "added" is what one failover costs.
    check = _get(results, "failover", "checks", FAILOVER)
    if isinstance(check, dict) and "answered" in check:
        how = (
            f"; {check['refused']:,} refused attempts for {check['answered']:,} answered "
            "requests (circuit_failures = 0: the circuit never opens)"
        )
    else:
        how = ""
    for p, tgt in (
        ("p50", Target("added", "<=", 1.0, "ms", "added <= 1 ms over no failover")),
        ("p99", None),
    ):
        row(
            f"failover: c=1 latency {p}",
            "ms",
            lambda c, p=p: _ms(_get(lat, FAILOVER, f"{p}_us")) if c == "governed" else None,
            direct_pick=lambda p=p: _ms(_get(lat, "governed", f"{p}_us")),
            target=tgt,
            note=(
                "direct column: the governed gateway's model whose one channel answers; "
                "governed column: its model whose first channel (priority 0) refuses "
                "connections, so each request fails over once to the mock (priority 1), "
                "measured in the same rounds; added = the cost of failing over" + how
            )
            if p == "p50"
            else "",
        )

    for conc in (32, 128):
        tp = results.get(f"throughput_c{conc}", {})
        tgt = Target("value", ">=", 5000, "req/s", ">= 5,000 req/s") if conc == 32 else None
        row(
            f"c={conc} throughput",
            "req/s",
            _at(tp, "rps"),
            added="ratio",
            target=tgt,
        )
        etgt = Target("value", "<=", 0, "errors", "0 errors") if conc == 32 else None
        row(
            f"c={conc} errors",
            "count",
            _at(tp, "error_total"),
            added="none",
            target=etgt,
        )
        row(f"c={conc} latency p99", "ms", _at(tp, "p99_us", scale=1e-3))

    sl = results.get("stream_latency", {})

    def sl_pick(kind: str, p: str) -> Callable[[str], Any]:
        return lambda c: _ms(_get(sl, c, kind, p))

    row(
        "stream time to first event p50",
        "ms",
        sl_pick("ttfe_us", "p50"),
        target=Target("added", "<=", 1.0, "ms", "added <= 1 ms"),
    )
    row("stream time to first event p99", "ms", sl_pick("ttfe_us", "p99"))
    row(
        "stream per-event gap p50",
        "ms",
        sl_pick("gap_us", "p50"),
        note=f"mock sends an event every {_get(sl, 'delay_us') or '?'} us",
    )
    row(
        "stream per-event gap p99",
        "ms",
        sl_pick("gap_us", "p99"),
        target=Target("added", "<=", 0.2, "ms", "added <= 0.2 ms"),
    )
    row("stream errors (sequential)", "count", lambda c: _get(sl, c, "errors"), added="none")

    sh = results.get("stream_hold", {})
    tried = [int(x) for x in (_get(sh, "levels_tried") or [])]
    row(
        "concurrent streams held without errors",
        "streams",
        lambda c: _get(sh, c, "held"),
        added="none",
        target=Target("value", ">=", 1000, "streams", ">= 1,000 with 0 errors"),
        note=f"levels tried {tried}, {_get(sh, 'delay_us')} us between events",
        unjudged=(
            f"only up to {max(tried)} streams tried" if tried and max(tried) < 1000 else None
        ),
    )

    def at_held(*path: str, scale: float = 1.0) -> Callable[[str], float | None]:
        """A figure from the highest level a target held."""

        def pick(col: str) -> float | None:
            held = _get(sh, col, "held")
            for lv in _get(sh, col, "levels") or []:
                if held and lv.get("level") == held:
                    v = _num(_get(lv, *path))
                    return v * scale if v is not None else None
            return None

        return pick

    row("held streams: time to first event p99", "ms", at_held("ttfe_us", "p99", scale=1e-3))
    row("held streams: per-event gap p99", "ms", at_held("gap_us", "p99", scale=1e-3))
    row(
        "held streams: peak RSS",
        "MiB",
        at_held("gateway_peak_memory_kb", "rss_kb", scale=1 / 1024),
        added="none",
        note="at the highest level each target held, sampled every 0.5 s",
    )

    mem = results.get("memory", {})

    def mem_pick(key: str) -> Callable[[str], Any]:
        def f(c: str) -> Any:
            v = _num(_get(mem, c, key, "rss_kb"))
            return v / 1024.0 if v is not None else None

        return f

    first_goal = next(
        (_get(mem, g, "first_goal") for g in GATEWAYS if _get(mem, g, "first_goal")), None
    )
    total_goal = next(
        (_get(mem, g, "total_goal") for g in GATEWAYS if _get(mem, g, "total_goal")), None
    )
    mock_rss = _num(_get(results, "mock_memory", "rss_kb"))
    mock_mib = (lambda: mock_rss / 1024.0) if mock_rss is not None else (lambda: None)
    row(
        "RSS idle",
        "MiB",
        mem_pick("idle"),
        added="none",
        direct_pick=mock_mib,
        note="direct column: the mock upstream",
    )
    row(
        f"RSS after first {first_goal or '?'} requests",
        "MiB",
        mem_pick("after_first"),
        added="none",
        note="wrk runs in 1 s slices, so each checkpoint is passed by a little; the exact "
        "request counts are in report.json",
    )
    row(f"RSS after {total_goal or '?'} requests", "MiB", mem_pick("after_all"), added="none")
    row(
        f"RSS growth first {first_goal or '?'} -> {total_goal or '?'}",
        "%",
        lambda c: _get(mem, c, "growth_pct"),
        added="none",
        target=Target("value", "<=", 10.0, "%", "within 10%"),
    )
    row("RSS after load stops", "MiB", mem_pick("after_stop"), added="none")

    lm = results.get("local_model", {})
    row(
        "local model tokens/s",
        "tokens/s",
        lambda c: _get(lm, "gateway", "tokens_per_s") if c == "governed" else None,
        added="ratio",
        direct_pick=lambda: _get(lm, "direct", "tokens_per_s"),
        target=Target("ratio", ">=", 90.0, "percentage points", ">= 90% of direct"),
        note="direct column: llama-cpp-python in its own process; gateway column: through the governed gateway",
    )
    return rows


def _fmt_unit(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit in ("count", "streams", "req/s"):
        return f"{v:,.0f}"
    if unit == "%":
        return f"{v:.1f}"
    return _fmt(v)


def _cell(r: dict[str, Any], col: str) -> str:
    v = r.get(col)
    s = _fmt_unit(v, r["unit"])
    if col in GATEWAYS and v is not None and r.get("added_kind") == "ratio":
        ratio = r.get(f"ratio_{col}")
        if ratio is not None:
            s += f" ({ratio:.2f}x)"
    return s


def _added(r: dict[str, Any]) -> str:
    kind = r.get("added_kind")
    if kind == "diff":
        parts = []
        for g in ("proxy", "governed"):
            v = r.get(f"added_{g}")
            parts.append("n/a" if v is None else f"{v:+.3f}")
        return " / ".join(parts)
    if kind == "ratio":
        parts = []
        for g in ("proxy", "governed"):
            v = r.get(f"ratio_{g}")
            parts.append("n/a" if v is None else f"{v:.2f}x")
        return " / ".join(parts)
    return ""


def _met(r: dict[str, Any]) -> str:
    if "target" not in r:
        return ""
    if r["met"] is True:
        return "yes"
    if r["met"] is False:
        return f"**NO**, {r['miss']}"
    return f"n/a ({r['miss']})"


def _load(la: Any) -> str:
    return "/".join(f"{x:.2f}" for x in la) if la else "?"


def markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    lines = [
        "# gemgate benchmark",
        "",
        f"- run: {meta['started']} ({'quick smoke run' if meta['quick'] else 'full run'}, "
        f"{meta['elapsed_s']:.0f} s)"
        + (": durations too short for the figures to mean much" if meta["quick"] else ""),
        f"- machine: {meta['cpus']} CPUs, {meta['memory_gib']:.0f} GiB; Python {meta['python']}; "
        f"{meta.get('wrk', 'wrk ?')}; load average before the run "
        f"{_load(meta.get('loadavg_start'))} (above ~0.5: other work shared the CPUs)",
        f"- load: wrk {meta['wrk_threads']} thread(s), {meta['duration_s']} s per target per "
        f"measurement in {meta['rounds']} interleaved round(s); mock upstream in C, "
        f"{meta['mock_threads']} thread(s)",
        "- governed = auth + budget reservation + ledger with durable commit; proxy = auth only; "
        "Gemini door to Gemini upstream",
        "- added = gateway minus direct (ms); for rates the ratio gateway / direct",
        "",
        "| metric | "
        + " | ".join(LABELS[c] for c in ("direct", "proxy", "governed"))
        + " | added (proxy / governed) | "
        + LABELS["governed_w2"]
        + " | target (governed, N=1) | met? |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in report["rows"]:
        name = f"{r['metric']} ({r['unit']})"
        lines.append(
            f"| {name} | {_cell(r, 'direct')} | {_cell(r, 'proxy')} | {_cell(r, 'governed')} | "
            f"{_added(r)} | {_cell(r, 'governed_w2')} | {r.get('target', {}).get('text', '')} | {_met(r)} |"
        )
    notes = [f"- {r['metric']}: {r['note']}" for r in report["rows"] if r.get("note")]
    if notes:
        lines += ["", "Notes:", *notes]
    summary = report["targets"]
    lines += [
        "",
        f"Targets met: {summary['met']} of {summary['total']}"
        + (f"; not measured: {summary['not_measured']}" if summary["not_measured"] else ""),
    ]
    for m in summary["missed"]:
        lines.append(f"- missed: {m}")
    if report["errors"]:
        lines += ["", "Errors during the run:"]
        lines += ["- " + e.splitlines()[0] for e in report["errors"]]
    return "\n".join(lines) + "\n"


def summarize_targets(rows: list[dict[str, Any]]) -> dict[str, Any]:
    judged = [r for r in rows if "target" in r]
    return {
        "total": len(judged),
        "met": sum(1 for r in judged if r["met"] is True),
        "not_measured": sum(1 for r in judged if r["met"] is None),
        "missed": [
            f"{r['metric']}: {r['target']['text']}, {r['miss']}"
            for r in judged
            if r["met"] is False
        ],
    }


def write(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    jp, mp = out / "report.json", out / "report.md"

    def default(o: Any) -> Any:
        if isinstance(o, Path):
            return str(o)
        if isinstance(o, set | tuple):
            return list(o)
        return str(o)

    def clean(o: Any) -> Any:  # NaN is not JSON
        if isinstance(o, float) and math.isnan(o):
            return None
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items()}
        if isinstance(o, list | tuple):
            return [clean(v) for v in o]
        return o

    jp.write_text(json.dumps(clean(report), indent=2, default=default) + "\n")
    mp.write_text(markdown(report))
    return jp, mp
