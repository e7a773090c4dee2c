"""wrk as the load generator: closed-loop POSTs with a fixed body, latency quantiles and errors.

A Lua script sets the method, body and headers and prints one machine-readable line at the
end with the error counters and 1,000 evenly spaced latency quantiles, so runs can be merged
into one distribution. (wrk always runs for its full duration, so "after N requests" is
reached by running it in slices: see ``bench.phases.memory``.)
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import procs
from bench.stats import merge_quantiles, weighted_percentile

QUANTILE_POINTS = 1000

_LUA = r"""
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
{headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {{"requests":%d,"duration_us":%d,"bytes":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"status":%d,"timeout":%d,"min":%.1f,"max":%.1f,"mean":%.3f,"stdev":%.3f,"q":[',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency.min, latency.max, latency.mean, latency.stdev))
  for i = 1, {points} do
    if i > 1 then io.write(",") end
    io.write(string.format("%.1f", latency:percentile(i * 100.0 / {points})))
  end
  io.write("]}}\n")
end
"""


def _lua_str(s: str) -> str:
    return json.dumps(s)  # a JSON string literal is a valid Lua string literal for ASCII


def write_script(path: Path, body: str, headers: Mapping[str, str]) -> Path:
    if "]==]" in body:
        raise ValueError("request body must not contain ]==]")
    hdrs = "\n".join(f"wrk.headers[{_lua_str(k)}] = {_lua_str(v)}" for k, v in headers.items())
    text = _LUA.format(
        body=body,
        headers=hdrs,
        points=QUANTILE_POINTS,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    errors: dict[str, int]
    quantiles_us: list[float] = field(repr=False)
    mean_us: float
    max_us: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def to_json(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
            "rps": round(self.rps, 1),
            "errors": self.errors,
            "error_total": self.error_total,
            "p50_us": self.percentile(50),
            "p99_us": self.percentile(99),
            "mean_us": round(self.mean_us, 1),
            "max_us": self.max_us,
        }

    def percentile(self, p: float) -> float:
        idx = max(0, min(len(self.quantiles_us) - 1, math.ceil(p / 100 * QUANTILE_POINTS) - 1))
        return self.quantiles_us[idx] if self.quantiles_us else math.nan


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("wrk is not installed")
    return path


def run_wrk(
    url: str,
    *,
    body: str,
    headers: Mapping[str, str],
    connections: int,
    duration_s: float,
    script_path: Path,
    threads: int = 1,
    timeout_s: float = 10.0,
) -> WrkResult:
    """One wrk run of ``duration_s`` (whole seconds, at least 1)."""
    threads = max(1, min(threads, connections))
    write_script(script_path, body, headers)
    dur = max(1, math.ceil(duration_s))
    argv = [
        wrk_path(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{dur}s",
        f"--timeout={max(1, math.ceil(timeout_s))}s",
        "-s",
        str(script_path),
        url,
    ]
    res = procs.run(argv, timeout=dur + timeout_s + 30)
    line = next((ln for ln in res.stdout.splitlines() if ln.startswith("BENCHJSON ")), None)
    if res.returncode != 0 or line is None:
        raise RuntimeError(
            f"wrk failed (exit {res.returncode}): {(res.stderr or res.stdout).strip()[-500:]}"
        )
    data = json.loads(line[len("BENCHJSON ") :])
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=data["duration_us"] / 1e6,
        errors={k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")},
        quantiles_us=[float(x) for x in data["q"]],
        mean_us=float(data["mean"]),
        max_us=float(data["max"]),
    )


def merge(results: Sequence[WrkResult]) -> dict[str, object]:
    """Combine several runs against one target into one summary."""
    if not results:
        return {"runs": 0}
    pairs = merge_quantiles([(r.quantiles_us, r.requests) for r in results])
    requests = sum(r.requests for r in results)
    duration = sum(r.duration_s for r in results)
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    return {
        "runs": len(results),
        "requests": requests,
        "duration_s": round(duration, 3),
        "rps": round(requests / duration, 1) if duration else 0.0,
        "rps_per_run": [round(r.rps, 1) for r in results],
        "errors": errors,
        "error_total": sum(errors.values()),
        "p50_us": weighted_percentile(pairs, 50),
        "p90_us": weighted_percentile(pairs, 90),
        "p99_us": weighted_percentile(pairs, 99),
        "p999_us": weighted_percentile(pairs, 99.9),
        "max_us": max(r.max_us for r in results),
        "mean_us": round(sum(r.mean_us * r.requests for r in results) / max(1, requests), 1),
    }
