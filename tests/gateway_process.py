"""Run the real gateway as a subprocess, as users run it, and drive its CLI."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx

UPSTREAM_KEY_VAR = "GEMGATE_TEST_UPSTREAM_KEY"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str, config: Path | None, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "gemgate", *args]
    if config is not None:
        cmd += ["--config", str(config)]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def wait_healthy(
    proc: subprocess.Popen[bytes], base_url: str, log: Path, timeout: float,
    verify: ssl.SSLContext | bool = True,
) -> None:
    """Return once ``GET /healthz`` answers 200; raise with what the server printed if it
    exits or does not answer within ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=0.5, verify=verify).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"gateway did not start:\n{log.read_text(errors='replace')}")


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Stop a gateway as Ctrl-C does, killing it if it takes more than 15 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class GatewayProcess:
    def __init__(self, workdir: Path, config_text: str, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.config = workdir / "gemgate.toml"
        self.config.write_text(config_text.replace("{PORT}", str(self.port)).replace("{DIR}", str(workdir)))
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "gateway.log"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gemgate", "serve", "--config", str(self.config), "--port", str(self.port)],
                cwd=self.workdir, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            wait_healthy(self.proc, self.base_url, self.log, timeout, verify=self.verify())
        except RuntimeError:
            self.stop()
            raise
        return self

    def verify(self) -> ssl.SSLContext | bool:
        """How the health check verifies the server's certificate (plain HTTP: moot)."""
        return True

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, config=self.config, env=self.env, check=check)

    def create_key(self, name: str, *options: str) -> str:
        out = self.cli("keys", "create", name, *options).stdout
        return out.strip().splitlines()[-1]
