"""The admin key: only in a header (a URL lands in proxy logs), and guessing it is logged
and rate limited per client address."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.billing.gateways import ADMIN_KEY, start
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess


@pytest.fixture
def gw(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("admin"), fake_google)
    yield proc
    proc.stop()


def test_the_admin_key_is_not_accepted_in_the_url(gw: GatewayProcess) -> None:
    in_url = httpx.get(f"{gw.base_url}/metrics", params={"key": ADMIN_KEY})
    assert in_url.status_code == 401, in_url.text
    assert "not in the URL" in in_url.json()["error"]["message"]
    in_header = httpx.get(f"{gw.base_url}/metrics", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert in_header.status_code == 200
    assert httpx.get(f"{gw.base_url}/metrics", headers={"x-goog-api-key": ADMIN_KEY}).status_code == 200


def test_wrong_admin_keys_are_logged_and_rate_limited(gw: GatewayProcess) -> None:
    guesses = [f"guess-{i:04d}-not-the-key" for i in range(10)]
    for i, guess in enumerate(guesses):
        path = "/metrics" if i % 2 else "/admin/usage"
        resp = httpx.get(gw.base_url + path, headers={"authorization": f"Bearer {guess}"})
        assert resp.status_code == 403, resp.text
    # The eleventh try in the minute is refused whatever it sends, the right key included.
    for path in ("/metrics", "/admin/usage"):
        resp = httpx.get(gw.base_url + path, headers={"authorization": f"Bearer {ADMIN_KEY}"})
        assert resp.status_code == 429, resp.text
        assert resp.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
        assert 1 <= int(resp.headers["retry-after"]) <= 60
    log = gw.log.read_text()
    refusals = [line for line in log.splitlines() if "admin access refused" in line]
    assert len(refusals) == 10 and all("127.0.0.1" in line for line in refusals)
    assert not any(guess in log for guess in guesses)
    assert ADMIN_KEY not in log
