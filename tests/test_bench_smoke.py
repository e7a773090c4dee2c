"""Smoke run of the benchmark harness: `python -m bench --quick` works and writes its report.

No timing is asserted: the figures of a one-second run on a shared machine mean nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _wrk_available() -> tuple[bool, str]:
    """The harness installs wrk itself when it can (Debian's package, as root)."""
    if shutil.which("wrk") and shutil.which("gcc"):
        return True, ""
    sys.path.insert(0, str(ROOT))
    try:
        from bench import install

        install.ensure_tools(install=True)
    except Exception as exc:  # no apt, not root, no network to the package mirror
        return False, f"wrk/gcc are missing and could not be installed: {exc}"
    finally:
        sys.path.remove(str(ROOT))
    return True, ""


@pytest.fixture(scope="module")
def quick_report(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[subprocess.CompletedProcess[str], Path]:
    ok, why = _wrk_available()
    if not ok:
        pytest.skip(why)
    out = tmp_path_factory.mktemp("bench-out")
    env = dict(os.environ)
    env.pop("GEMGATE_CONFIG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, out


def test_quick_run_writes_report(
    quick_report: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = quick_report
    detail = f"exit {proc.returncode}\nstdout tail:\n{proc.stdout[-3000:]}\nstderr tail:\n{proc.stderr[-3000:]}"
    assert proc.returncode in (0, 1), detail  # 1: a measurement failed, the report says which
    report_json = out / "report.json"
    report_md = out / "report.md"
    assert report_json.is_file(), detail
    assert report_md.is_file(), detail
    doc = json.loads(report_json.read_text())
    for key in ("schema", "meta", "results", "rows", "targets", "errors"):
        assert key in doc, key
    assert doc["meta"]["quick"] is True
    for key in (
        "latency_c1",
        "throughput_c32",
        "throughput_c128",
        "stream_latency",
        "stream_hold",
        "memory",
    ):
        assert key in doc["results"], key
    assert "| metric |" in report_md.read_text()


def test_quick_run_measures_every_gateway(
    quick_report: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_report
    doc = json.loads((out / "report.json").read_text())
    results = doc["results"]
    for gw in ("proxy", "governed", "governed_w2"):
        assert results["gateways"][gw].get("ok"), (gw, results["gateways"][gw], doc["errors"])
        for section in ("latency_c1", "throughput_c32", "throughput_c128"):
            entry = results[section][gw]
            assert "error" not in entry, (section, gw, entry)
            assert entry["requests"] > 0, (section, gw, entry)
        assert results["stream_latency"][gw]["ttfe_us"]["n"] > 0
        assert results["stream_hold"][gw]["levels"], gw
        assert results["memory"][gw]["after_all"]["rss_kb"] > 0
    rows = {r["metric"]: r for r in doc["rows"]}
    for metric in (
        "c=1 latency p50",
        "c=1 latency p99",
        "c=32 throughput",
        "stream time to first event p50",
    ):
        row = rows[metric]
        for col in ("direct", "proxy", "governed", "governed_w2"):
            assert row[col] is not None, (metric, col, row)
        assert "met" in row
    assert doc["targets"]["total"] >= 8


def test_quick_run_measures_failover(
    quick_report: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = quick_report
    doc = json.loads((out / "report.json").read_text())
    results = doc["results"]
    entry = results["latency_c1"]["governed_failover"]
    assert "error" not in entry, (entry, doc["errors"])
    assert entry["requests"] > 0, entry
    check = results["failover"]["checks"]["governed_failover"]
    assert "error" not in check, (check, doc["errors"])
    # every request the mock answered for the failover model was refused first
    assert check["answered"] >= entry["requests"] > 0, check
    assert check["refused"] >= check["answered"], check
    rows = {r["metric"]: r for r in doc["rows"]}
    p50 = rows["failover: c=1 latency p50"]
    assert p50["direct"] is not None and p50["governed"] is not None, p50
    assert p50["added_governed"] is not None and "met" in p50, p50
    assert "failover: c=1 latency p50" in (out / "report.md").read_text()
