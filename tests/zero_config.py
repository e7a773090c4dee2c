"""A gateway run as a new user runs it: the README's own command, no config file, in a
directory of its own whose ``.venv`` is this project's virtualenv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.gateway_process import free_port, stop_process, wait_healthy


def shell_env(**extra: str) -> dict[str, str]:
    """This environment without a config file named in it, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "GEMGATE_CONFIG"}
    return {**env, **extra}


class ZeroConfigGateway:
    """``command`` (e.g. ``.venv/bin/gemgate serve``) is run by bash in ``workdir`` with
    ``--port`` added; commands given to :meth:`sh` run there too."""

    def __init__(self, workdir: Path, command: str) -> None:
        self.workdir = workdir
        venv = workdir / ".venv"
        if not venv.exists():
            venv.symlink_to(sys.prefix, target_is_directory=True)
        self.port = free_port()
        self.command = f"{command} --port {self.port}"
        self.log = workdir / "gateway.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> ZeroConfigGateway:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                ["bash", "-c", f"exec {self.command}"],
                cwd=self.workdir, env=shell_env(), stdout=log, stderr=subprocess.STDOUT,
            )
        try:
            wait_healthy(self.proc, self.base_url, self.log, timeout)
        except RuntimeError:
            self.stop()
            raise
        return self

    def output(self) -> str:
        """What the gateway printed so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def sh(self, script: str, timeout: float = 120.0, **env: str) -> subprocess.CompletedProcess[str]:
        """Run ``script`` with bash in the gateway's directory."""
        return subprocess.run(
            ["bash", "-c", script], cwd=self.workdir, env=shell_env(**env),
            capture_output=True, text=True, timeout=timeout,
        )
