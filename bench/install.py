"""Install what the harness needs and build the mock upstream.

wrk and gcc come from Debian's packages (``apt-get install -y wrk gcc``), run only when a tool
is missing and we are root; every step is printed. The mock is compiled into
``bench/build/`` (git-ignored) and rebuilt when its source is newer than the binary.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from bench import procs

BENCH_DIR = Path(__file__).resolve().parent
MOCK_SRC = BENCH_DIR / "mock" / "mock.c"
BUILD_DIR = BENCH_DIR / "build"
MOCK_BIN = BUILD_DIR / "mock"

APT_PACKAGES = {"wrk": "wrk", "gcc": "gcc"}


class SetupError(RuntimeError):
    pass


def _say(msg: str) -> None:
    print(f"[bench setup] {msg}", flush=True)


def _apt_install(packages: list[str]) -> None:
    if os.geteuid() != 0:
        raise SetupError(
            f"missing {', '.join(packages)} and not root: run `sudo apt-get install -y "
            f"{' '.join(packages)}`"
        )
    if shutil.which("apt-get") is None:
        raise SetupError(f"missing {', '.join(packages)} and there is no apt-get to install them")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", *packages]
    _say("running: " + " ".join(cmd))
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        _say("install failed; running: apt-get update -q, then retrying")
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=900)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-5:]
        raise SetupError("apt-get install failed:\n  " + "\n  ".join(tail))


def ensure_tools(install: bool = True) -> dict[str, str]:
    """Make sure wrk and gcc are on PATH; returns {tool: version line}."""
    missing = [t for t in APT_PACKAGES if shutil.which(t) is None]
    if missing:
        if not install:
            raise SetupError(f"missing tools: {', '.join(missing)} (installation disabled)")
        _say(f"missing: {', '.join(missing)}; installing from Debian's packages")
        _apt_install([APT_PACKAGES[t] for t in missing])
    versions: dict[str, str] = {}
    for tool, flag in (("wrk", "--version"), ("gcc", "--version")):
        path = shutil.which(tool)
        if path is None:
            raise SetupError(f"{tool} is still missing after installation")
        res = subprocess.run([path, flag], capture_output=True, text=True, timeout=30)
        first = (res.stdout or res.stderr).strip().splitlines()
        versions[tool] = first[0].split(" Copyright")[0] if first else path
    _say("using " + "; ".join(f"{shutil.which(t)} ({v})" for t, v in versions.items()))
    return versions


def build_mock(force: bool = False) -> Path:
    """Compile bench/mock/mock.c to bench/build/mock (only when out of date)."""
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    if not force and MOCK_BIN.exists() and MOCK_BIN.stat().st_mtime >= MOCK_SRC.stat().st_mtime:
        return MOCK_BIN
    cmd = ["gcc", "-O2", "-Wall", "-Wextra", "-pthread", "-o", str(MOCK_BIN), str(MOCK_SRC)]
    _say("building the mock upstream: gcc -O2 -pthread -o bench/build/mock bench/mock/mock.c")
    res = procs.run(cmd, timeout=120)
    if res.returncode != 0:
        raise SetupError("building the mock failed:\n" + res.stderr.strip())
    return MOCK_BIN
