"""Shared fixtures: a fake Google upstream and one real gateway process serving it and the
local model, for the whole session."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

UPSTREAM_KEY = "upstream-secret-key-AIzaSyFAKE0123456789"
OPENAI_KEY = "sk-upstream-openai-secret-0123456789"
OPENAI_KEY_VAR = "GEMGATE_TEST_OPENAI_KEY"

GATEWAY_CONFIG = """
[server]
host = "127.0.0.1"
port = {PORT}
max_body_mb = 2

[database]
url = "sqlite:///{DIR}/gemgate.db"

# Protocol tests script upstream failures one after another: no circuit opens between them
# (tests/pipeline/ cover the breaker).
[routing]
circuit_failures = 0

[[providers]]
name = "google"
type = "gemini"
base_url = "%(google)s"
api_key = "env:%(key_var)s"

[[providers]]
name = "local"
type = "local"

[[models]]
id = "google/gemini-2.5-flash"
provider = "google"
upstream_model = "gemini-2.5-flash"
aliases = ["gemini-2.5-flash"]

[[models]]
id = "gemini-2.5-pro"
provider = "google"

[[models]]
id = "gemini-2.5-flash-image"
provider = "google"

[[models]]
id = "gemini-embedding-001"
provider = "google"

[[models]]
id = "gemma-3-270m"
provider = "local"

[[providers]]
name = "oai"
type = "openai"
base_url = "%(openai)s"
api_key = "env:%(openai_key_var)s"

[[models]]
id = "gpt-4o-mini"
provider = "oai"
[models.price]
input = "0.15"
output = "0.60"

[[models]]
id = "oai/mini"
provider = "oai"
upstream_model = "gpt-4o-mini"
"""


@pytest.fixture(scope="session")
def fake_google() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def fake_openai() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset_fakes(request: pytest.FixtureRequest) -> None:
    if "fake_google" in request.fixturenames:
        request.getfixturevalue("fake_google").reset()
    if "fake_openai" in request.fixturenames:
        request.getfixturevalue("fake_openai").reset()


def gateway_config(fake: FakeGemini, openai: FakeOpenAI) -> str:
    return GATEWAY_CONFIG % {
        "google": fake.base_url, "key_var": UPSTREAM_KEY_VAR,
        "openai": openai.base_url, "openai_key_var": OPENAI_KEY_VAR,
    }


@pytest.fixture(scope="session")
def gateway(
    fake_google: FakeGemini, fake_openai: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    workdir: Path = tmp_path_factory.mktemp("gateway")
    proc = GatewayProcess(
        workdir,
        gateway_config(fake_google, fake_openai),
        env={UPSTREAM_KEY_VAR: UPSTREAM_KEY, OPENAI_KEY_VAR: OPENAI_KEY},
    )
    proc.start()
    yield proc
    proc.stop()


_names = itertools.count()


@pytest.fixture(scope="session")
def api_key(gateway: GatewayProcess) -> str:
    return gateway.create_key("session-key")


@pytest.fixture
def new_key(gateway: GatewayProcess):  # type: ignore[no-untyped-def]
    """Create a fresh key with options: ``new_key("--models", "x")``."""

    def make(*options: str) -> str:
        return gateway.create_key(f"key-{next(_names)}", *options)

    return make
