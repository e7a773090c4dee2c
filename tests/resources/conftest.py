"""One gateway for the resource tests, in front of two fake Google projects, the local
model and a fake OpenAI upstream."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_process import GatewayProcess
from tests.resources.gateways import OPENAI_KEY, UPSTREAM_KEY, start


@pytest.fixture(scope="session")
def google_a() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def google_b() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=UPSTREAM_KEY) as fake:
        yield fake


@pytest.fixture(scope="session")
def openai_fake() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(api_key=OPENAI_KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset_resource_fakes(request: pytest.FixtureRequest) -> None:
    for name in ("google_a", "google_b", "openai_fake"):
        if name in request.fixturenames:
            request.getfixturevalue(name).reset()


@pytest.fixture(scope="session")
def resource_gw(
    google_a: FakeGemini,
    google_b: FakeGemini,
    openai_fake: FakeOpenAI,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayProcess]:
    gw = start(tmp_path_factory.mktemp("resources"), google_a, google_b, openai_fake, files_extra="prune_s = 0.3")
    yield gw
    gw.stop()


_names = itertools.count()


@pytest.fixture
def make_key(resource_gw: GatewayProcess) -> Callable[..., str]:
    def make(*options: str) -> str:
        return resource_gw.create_key(f"res-{next(_names)}", *options)

    return make
