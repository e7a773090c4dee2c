"""A gateway of the Live tests' own: TLS with a throwaway self-signed certificate, the fake
Google Live upstream and the local model; and the google-genai SDK pointed at it."""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from google import genai
from tests.fakes.gemini_live_upstream import FakeGeminiLive
from tests.gateway_process import GatewayProcess, free_port

LIVE_UPSTREAM_KEY = "AIzaSyFAKE-live-upstream-0123456789"
LIVE_KEY_VAR = "GEMGATE_TEST_LIVE_KEY"

CONFIG = """
[server]
host = "127.0.0.1"
port = {PORT}
tls_cert = "{DIR}/cert.pem"
tls_key = "{DIR}/key.pem"

[database]
url = "sqlite:///{DIR}/gemgate.db"

[routing]
circuit_failures = 0

[live]
max_sessions_per_key = 3
idle_timeout_s = 4

[[providers]]
name = "google-live"
type = "gemini"
base_url = "%(live)s"
api_key = "env:%(key_var)s"

[[providers]]
name = "local"
type = "local"

[[models]]
id = "gemini-live-2.5-flash"
provider = "google-live"
upstream_model = "gemini-live-upstream-001"
[models.price]
input = "100"
output = "400"

[[models]]
id = "gemma-3-270m"
provider = "local"

# The local model again, at a price, for budgets on sessions the gateway runs itself.
[[models]]
id = "gemma-priced"
provider = "local"
upstream_model = "gemma-3-270m"
[models.price]
input = "1000"
output = "1000"

# Live channels in order: nothing listens on the first.
[[providers]]
name = "dead-live"
type = "gemini"
base_url = "http://127.0.0.1:%(dead_port)d"
api_key = "env:%(key_var)s"

[[models]]
id = "live-failover"
catalog = "gemini-2.5-flash"
channels = [
  { provider = "dead-live", upstream_model = "gemini-live-upstream-001", priority = 0 },
  { provider = "google-live", upstream_model = "gemini-live-upstream-001", priority = 1 },
]
"""


def make_cert(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 and localhost (cert.pem, key.pem)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gemgate test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = directory / "cert.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return path


class TlsGateway(GatewayProcess):
    """The gateway serving HTTPS (and so WSS) with the test's own certificate."""

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def cert(self) -> Path:
        return self.workdir / "cert.pem"

    def verify(self) -> ssl.SSLContext:
        return self.ssl_context()

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.cert))


def sdk(gw: TlsGateway, key: str, *, prefix: str = "/gemini", api_version: str = "v1beta",
        trailing_slash: bool = False) -> genai.Client:
    """The SDK as a user points it at the gateway; it trusts the test's certificate."""
    options: dict[str, Any] = {
        "base_url": gw.base_url + prefix + ("/" if trailing_slash else ""),
        "api_version": api_version,
        "async_client_args": {"ssl": gw.ssl_context()},
        "client_args": {"verify": gw.ssl_context()},
    }
    return genai.Client(api_key=key, http_options=options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def live_fake() -> Iterator[FakeGeminiLive]:
    with FakeGeminiLive(api_key=LIVE_UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset_live_fake(request: pytest.FixtureRequest) -> None:
    if "live_fake" in request.fixturenames:
        request.getfixturevalue("live_fake").reset()


@pytest.fixture(scope="module")
def live_gw(live_fake: FakeGeminiLive, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsGateway]:
    workdir = tmp_path_factory.mktemp("live-gateway")
    make_cert(workdir)
    text = CONFIG % {"live": live_fake.base_url, "key_var": LIVE_KEY_VAR, "dead_port": free_port()}
    gw = TlsGateway(workdir, text, env={LIVE_KEY_VAR: LIVE_UPSTREAM_KEY})
    gw.start()
    yield gw
    gw.stop()
