"""What one client can make the gateway hold before it is even authenticated is bounded:
header size and count, silent connections, open connections, and bytes of request bodies
in flight. Real gateway processes, real sockets."""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.billing.gateways import ADMIN_KEY, ADMIN_KEY_VAR, MODEL, config
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

from gemgate import serving

PATH = f"/v1beta/models/{MODEL}:generateContent"


class LimitedGateway(GatewayProcess):
    """A gateway started with at most ``open_files`` file descriptors."""

    def __init__(self, workdir: Path, config_text: str, env: dict[str, str], open_files: int) -> None:
        super().__init__(workdir, config_text, env)
        self.open_files = open_files

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        limit = self.open_files

        def lower() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gemgate", "serve", "--config", str(self.config), "--port", str(self.port)],
            cwd=self.workdir, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
            preexec_fn=lower,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError(f"gateway did not start:\n{self.log.read_text()}")


def small_body_config(fake: FakeGemini) -> str:
    return config(fake).replace("[server]\n", "[server]\nmax_body_mb = 1\n", 1)


@pytest.fixture(scope="module")
def gw(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = GatewayProcess(
        tmp_path_factory.mktemp("serving"), small_body_config(fake_google), {UPSTREAM_KEY_VAR: fake_google.api_key, ADMIN_KEY_VAR: ADMIN_KEY}
    ).start()
    yield proc
    proc.stop()


def rss_mib(gw: GatewayProcess) -> float:
    assert gw.proc is not None
    for line in Path(f"/proc/{gw.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def connect(gw: GatewayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gw.port), timeout=20)


def answer(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection (or 20 s pass)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def send_big_header(gw: GatewayProcess, size: int) -> bytes:
    with connect(gw) as sock:
        sock.sendall(f"POST {PATH} HTTP/1.1\r\nhost: x\r\nx-filler: ".encode())
        chunk = b"a" * 65536
        try:
            for _ in range(size // len(chunk)):
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return answer(sock)


def test_huge_headers_get_431_and_cost_no_memory(gw: GatewayProcess) -> None:
    before = rss_mib(gw)
    replies = [send_big_header(gw, 16 * 1024 * 1024) for _ in range(10)]
    for reply in replies:
        assert reply.startswith(b"HTTP/1.1 431 "), reply[:200]
        assert b'"status":"INVALID_ARGUMENT"' in reply
    assert rss_mib(gw) - before < 40
    assert httpx.get(gw.base_url + "/healthz").status_code == 200


def test_too_many_header_fields_get_431(gw: GatewayProcess) -> None:
    with connect(gw) as sock:
        fields = "".join(f"x-f{i}: v\r\n" for i in range(serving.MAX_HEADERS + 50))
        sock.sendall(f"GET /healthz HTTP/1.1\r\nhost: x\r\n{fields}\r\n".encode())
        assert answer(sock).startswith(b"HTTP/1.1 431 ")


def test_a_silent_connection_is_closed(gw: GatewayProcess) -> None:
    with connect(gw) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nhost: x\r\n")  # and never the end
        started = time.monotonic()
        reply = answer(sock)
        took = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert took < serving.HEADER_TIMEOUT_S + 3


def test_large_bodies_in_flight_are_bounded(gw: GatewayProcess) -> None:
    key = gw.create_key("bodies")
    size = 1_000_000
    budget = serving.BODY_BUDGET_FACTOR * 1024 * 1024
    head = (
        f"POST {PATH} HTTP/1.1\r\nhost: x\r\nx-goog-api-key: {key}\r\n"
        f"content-type: application/json\r\ncontent-length: {size}\r\n\r\n"
    ).encode()
    held = []
    try:
        for _ in range(budget // size):  # these bodies arrive slowly: their room is held
            sock = connect(gw)
            sock.sendall(head + b"{")
            held.append(sock)
        time.sleep(0.5)
        body = b'{"contents": [{"parts": [{"text": "' + b"x" * (size - 40) + b'"}]}]}'
        started = time.monotonic()
        refused = httpx.post(gw.base_url + PATH, content=body, headers={"x-goog-api-key": key}, timeout=30)
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["status"] == "UNAVAILABLE"
        assert int(refused.headers["retry-after"]) >= 1
        assert time.monotonic() - started < 10
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # the held room comes back as their requests end
        resp = httpx.post(gw.base_url + PATH, content=body, headers={"x-goog-api-key": key}, timeout=30)
        if resp.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert resp.status_code == 200, resp.text


def test_connections_beyond_the_cap_are_refused_and_logged(
    fake_google: FakeGemini, tmp_path: Path
) -> None:
    open_files = 256
    cap = serving.connection_cap(open_files)
    proc = LimitedGateway(tmp_path, config(fake_google), {UPSTREAM_KEY_VAR: fake_google.api_key, ADMIN_KEY_VAR: ADMIN_KEY}, open_files)
    proc.start()
    idle: list[socket.socket] = []
    try:
        for _ in range(cap + 20):
            idle.append(connect(proc))
        time.sleep(0.5)
        refused = 0
        for sock in idle[cap:]:
            sock.settimeout(2)
            reply = answer(sock)
            refused += reply.startswith(b"HTTP/1.1 503 ")
        assert refused >= 19
        for sock in idle:
            sock.close()
        idle.clear()
        assert httpx.get(proc.base_url + "/healthz", timeout=5).status_code == 200
        assert "open connections is the cap" in proc.log.read_text()
    finally:
        for sock in idle:
            sock.close()
        proc.stop()
