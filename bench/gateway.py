"""Start the gateway in front of the mock, in pure-proxy or governed mode.

Everything that makes the two modes differ lives in :func:`mode_spec`: change it there.

When the failover measurement runs, every gateway also serves :data:`FAILOVER_MODEL`,
whose first channel (priority 0) is a provider at an address that refuses connections and
whose second (priority 1) is the mock, with circuit breakers that never open, so each
request to it fails over once.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs

FAILOVER_MODEL = "bench-failover"
REFUSING_PROVIDER = "refusing"
UPSTREAM_KEY_ENV = "BENCH_UPSTREAM_KEY"
UPSTREAM_KEY_VALUE = "bench-upstream-key-not-checked"
READY_TIMEOUT_S = 120.0
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class ModeSpec:
    """How one gateway mode is configured."""

    name: str
    ledger_enabled: bool
    price: dict[str, str] | None  # per 1M tokens, as decimal strings
    key_args: tuple[str, ...]  # extra arguments to `gemgate keys create NAME`
    extra_toml: str = ""


def mode_spec(mode: str) -> ModeSpec:
    """THE place where pure proxy and governed differ.

    - proxy: authentication only. A key without a budget, the ledger off, no prices.
    - governed: authentication + budget reservation + ledger with durable commit. A key with
      a (never reached) budget and the benchmark models priced, so every request reserves,
      meters, costs and commits a usage row before its last bytes go out.
    """
    if mode == "proxy":
        return ModeSpec(name="proxy", ledger_enabled=False, price=None, key_args=())
    if mode == "governed":
        return ModeSpec(
            name="governed",
            ledger_enabled=True,
            price={"input": "0.30", "output": "2.50"},
            key_args=("--budget-usd", "1000000"),
        )
    raise ValueError(f"unknown gateway mode {mode!r}")


@dataclass
class LocalModelSpec:
    """The local llama.cpp model, configured identically for the gateway and the direct run."""

    model_id: str = "gemma-3-270m"
    model_path: str | None = None  # None: the gateway's bundled default
    n_ctx: int = 2048
    threads: int = 2


def _toml_str(s: str) -> str:
    return json.dumps(s)  # a JSON string is a valid TOML basic string


def render_config(
    *,
    mode: str,
    port: int,
    db_path: Path,
    mock_url: str,
    models: list[str],
    workers: int,
    local: LocalModelSpec | None = None,
    refusing_url: str | None = None,
    extra_toml: str = "",
) -> str:
    """The gateway's config file. With ``refusing_url`` (an address where connections are
    refused) it adds :data:`FAILOVER_MODEL`, served first by a provider at that address and
    then by the mock, and turns circuit breaking off (``circuit_failures = 0``) so that every
    request to it really tries the refusing channel first instead of skipping it."""
    spec = mode_spec(mode)
    lines = [
        "# written by the benchmark harness (bench/gateway.py)",
        "[server]",
        'host = "127.0.0.1"',
        f"port = {port}",
        f"workers = {workers}",
        "",
        "[database]",
        f"url = {_toml_str('sqlite:///' + str(db_path.resolve()))}",
        "",
        "[ledger]",
        f"enabled = {'true' if spec.ledger_enabled else 'false'}",
        "",
    ]
    if workers > 1:
        # Several workers share budgets and rate limits through Redis (the gateway refuses
        # to start them without it); each run has its own prefix.
        lines += [
            "[redis]",
            f"url = {_toml_str(REDIS_URL)}",
            f'prefix = "gemgate-bench-{port}"',
            "",
        ]
    if refusing_url is not None:
        lines += ["[routing]", "circuit_failures = 0", ""]
    lines += [
        "[[providers]]",
        'name = "mock"',
        'type = "gemini"',
        f"base_url = {_toml_str(mock_url)}",
        f'api_key = "env:{UPSTREAM_KEY_ENV}"',
    ]
    if refusing_url is not None:
        lines += [
            "",
            "[[providers]]",
            f"name = {_toml_str(REFUSING_PROVIDER)}",
            'type = "gemini"',
            f"base_url = {_toml_str(refusing_url)}",
            f'api_key = "env:{UPSTREAM_KEY_ENV}"',
        ]
    if local is not None:
        lines += ["", "[[providers]]", 'name = "local"', 'type = "local"']
        if local.model_path:
            lines.append(f"model_path = {_toml_str(local.model_path)}")
        lines += [f"n_ctx = {local.n_ctx}", f"threads = {local.threads}"]
    model_entries = [(m, "mock", m) for m in models]
    if local is not None:
        model_entries.append((local.model_id, "local", local.model_id))
    for mid, provider, upstream in model_entries:
        lines += [
            "",
            "[[models]]",
            f"id = {_toml_str(mid)}",
            f"provider = {_toml_str(provider)}",
            f"upstream_model = {_toml_str(upstream)}",
        ]
        lines += _price_lines(spec)
    if refusing_url is not None:
        base = _toml_str(models[0])
        lines += [
            "",
            "[[models]]",
            f"id = {_toml_str(FAILOVER_MODEL)}",
            "channels = [",
            f"  {{ provider = {_toml_str(REFUSING_PROVIDER)}, upstream_model = {base}, priority = 0 }},",
            f'  {{ provider = "mock", upstream_model = {base}, priority = 1 }},',
            "]",
            *_price_lines(spec),
        ]
    if spec.extra_toml:
        lines += ["", spec.extra_toml]
    if extra_toml:
        lines += ["", extra_toml]
    return "\n".join(lines) + "\n"


def _price_lines(spec: ModeSpec) -> list[str]:
    if not spec.price:
        return []
    return ["[models.price]", *(f"{k} = {_toml_str(v)}" for k, v in spec.price.items())]


def gemgate_command() -> list[str]:
    """The gateway CLI next to this interpreter, else ``python -m gemgate``."""
    exe = Path(sys.executable).parent / "gemgate"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("gemgate")
    if found:
        return [found]
    return [sys.executable, "-m", "gemgate"]


def gateway_available() -> tuple[bool, str]:
    """Whether ``gemgate --help`` works; (ok, reason)."""
    try:
        res = procs.run([*gemgate_command(), "--help"], timeout=60)
    except (OSError, TimeoutError) as exc:
        return False, str(exc)
    if res.returncode != 0:
        tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
        return False, "`gemgate --help` failed: " + " | ".join(tail)
    if "serve" not in res.stdout:
        return False, "`gemgate --help` does not list a serve command"
    return True, "ok"


@dataclass
class Gateway:
    """One running gateway (possibly with several worker processes)."""

    name: str
    mode: str
    workers: int
    workdir: Path
    mock_url: str
    models: list[str]
    local: LocalModelSpec | None = None
    refusing_url: str | None = None  # set: the gateway serves FAILOVER_MODEL (see module doc)
    extra_toml: str = ""  # more config tables (a benchmark's own settings)
    port: int = 0
    key: str = ""
    proc: Any = None
    startup_s: float = 0.0
    _t0: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.key}

    @property
    def config_path(self) -> Path:
        return self.workdir / "gemgate.toml"

    @property
    def log_path(self) -> Path:
        return self.workdir / "gateway.log"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env[UPSTREAM_KEY_ENV] = UPSTREAM_KEY_VALUE
        env["GEMGATE_CONFIG"] = str(self.config_path)
        return env

    def start(self) -> None:
        self.launch()
        self.wait_ready()

    def launch(self) -> None:
        """Write the config, create the key and start the server (without waiting for it)."""
        if self.workdir.exists():
            shutil.rmtree(self.workdir)
        self.workdir.mkdir(parents=True)
        self.port = procs.free_port()
        self.config_path.write_text(
            render_config(
                mode=self.mode,
                port=self.port,
                db_path=self.workdir / "bench.db",
                mock_url=self.mock_url,
                models=self.models,
                workers=self.workers,
                local=self.local,
                refusing_url=self.refusing_url,
                extra_toml=self.extra_toml,
            )
        )
        self.key = self._create_key()
        argv = [
            *gemgate_command(),
            "serve",
            "--config",
            str(self.config_path),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers),
        ]
        self._t0 = time.monotonic()
        self.proc = procs.spawn(argv, log=self.log_path, env=self._env(), cwd=self.workdir)

    def wait_ready(self) -> None:
        """Poll GET /v1beta/models with the key until it answers 200."""
        url = f"{self.base_url}/v1beta/models"
        procs.wait_until(
            lambda: procs.http_status(url, headers=self.headers, timeout=2)[0] == 200,
            timeout=READY_TIMEOUT_S,
            proc=self.proc,
            what=f"gateway {self.name} (GET /v1beta/models with the key)",
            log=self.log_path,
        )
        self.startup_s = time.monotonic() - self._t0

    def _create_key(self) -> str:
        spec = mode_spec(self.mode)
        argv = [*gemgate_command(), "keys", "create", f"bench-{self.name}", *spec.key_args]
        res = procs.run(argv, timeout=120, env=self._env(), cwd=self.workdir)
        lines = [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]
        if res.returncode != 0 or not lines:
            raise RuntimeError(
                f"`gemgate keys create` failed (exit {res.returncode}): "
                + (res.stderr or res.stdout).strip()[-800:]
            )
        return lines[-1]

    def memory(self) -> dict[str, int]:
        if self.proc is None or self.proc.poll() is not None:
            return {"rss_kb": 0, "pss_kb": 0, "processes": 0}
        return procs.memory_kb(self.proc.pid)

    def channels(self, model: str) -> dict[str, dict[str, Any]]:
        """Provider name -> the gateway's record of that channel of ``model`` (successes,
        failures, circuit, ...), from ``GET /admin/channels`` (open to this machine when no
        admin key is configured). With several workers it is one worker's view."""
        st, data = procs.http_status(f"{self.base_url}/admin/channels", timeout=5)
        if st != 200:
            raise RuntimeError(f"GET /admin/channels answered {st}: {data[:200]!r}")
        rows = json.loads(data).get("channels", [])
        return {r["provider"]: r for r in rows if r.get("model") == model}

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        procs.stop(self.proc, grace_s=10.0)
        self.proc = None

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
