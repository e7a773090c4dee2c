"""Admitting a large text/* inline part for a budgeted key never stalls the event loop:
it is bounded by its size, not tokenized on the loop. Measured from outside: a /healthz
sent while the large request is admitted is answered promptly."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.billing.gateways import MODEL, start
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

PATH = f"/v1beta/models/{MODEL}:generateContent"


@pytest.fixture(scope="module")
def gw(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("loop"), fake_google)
    yield proc
    proc.stop()


def test_a_large_text_part_does_not_block_other_requests(gw: GatewayProcess) -> None:
    key = gw.create_key("loop", "--budget-usd", "100")
    text = ("The gateway reads every line of this file. " * 8 + "\n") * 14_000  # about 5 MB
    body = {
        "contents": [{"role": "user", "parts": [
            {"text": "Summarise the file."},
            {"inlineData": {"mimeType": "text/plain", "data": base64.b64encode(text.encode()).decode()}},
        ]}],
        "generationConfig": {"maxOutputTokens": 10},
    }
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=gw.base_url, timeout=30) as client:
            while not done.is_set():
                started = time.monotonic()
                assert client.get("/healthz").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        time.sleep(0.2)
        for _ in range(3):
            resp = httpx.post(gw.base_url + PATH, json=body, headers={"x-goog-api-key": key}, timeout=60)
            assert resp.status_code == 200, resp.text[:300]
    finally:
        done.set()
        prober.join()
    assert len(latencies) > 5
    assert max(latencies) < 0.5, sorted(latencies)[-5:]
