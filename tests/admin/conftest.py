"""One console gateway shared by the admin API tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.admin.console_gateway import start
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess


@pytest.fixture(scope="module")
def console_gw(
    fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("console"), fake_google)
    yield proc
    proc.stop()
