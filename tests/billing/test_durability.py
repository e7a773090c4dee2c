"""A kill -9 of the gateway under load loses no record of an answer a client received
complete, and a restart on the same database duplicates none."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from tests.billing.gateways import MODEL, records, spent_nanos, sqlite_url, start, stream_events
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

UNARY = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"
HELLO = {"contents": [{"role": "user", "parts": [{"text": "count to eight please"}]}]}
WORKERS = 12


@dataclass
class Outcome:
    kind: str
    request_id: str | None = None
    complete: bool = False


def unary(client: httpx.Client, key: str) -> Outcome:
    out = Outcome("unary")
    try:
        resp = client.post(UNARY, json=HELLO, headers={"x-goog-api-key": key})
        out.request_id = resp.headers.get("x-gemgate-request-id")
        body = resp.json()
        out.complete = resp.status_code == 200 and bool(body["candidates"][0]["finishReason"])
    except (httpx.HTTPError, ValueError, KeyError):
        pass
    return out


def stream(client: httpx.Client, key: str) -> Outcome:
    out = Outcome("stream")
    try:
        with client.stream("POST", STREAM, json=HELLO, headers={"x-goog-api-key": key}) as resp:
            out.request_id = resp.headers.get("x-gemgate-request-id")
            last = None
            for line in resp.iter_lines():  # raises if the connection dies before the end
                if line.startswith("data: "):
                    last = json.loads(line[6:])
            finished = bool(last and last["candidates"][0].get("finishReason"))
            out.complete = resp.status_code == 200 and finished
    except (httpx.HTTPError, ValueError, KeyError):
        pass
    return out


@pytest.fixture
def gw(
    fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("durability"), fake_google)
    yield proc
    proc.stop()


def test_kill_9_under_load_loses_no_delivered_record(
    gw: GatewayProcess, fake_google: FakeGemini
) -> None:
    key = gw.create_key("loaded", "--budget-usd", "1000")
    fake_google.set_delay(0.02)
    for _ in range(3000):  # streams that take a while, so some are cut mid-answer
        fake_google.script(
            MODEL, stream=stream_events(8), event_delay=0.01, method="streamGenerateContent"
        )
    stop = threading.Event()
    outcomes: list[Outcome] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        with httpx.Client(base_url=gw.base_url, timeout=10) as client:
            n = 0
            while not stop.is_set():
                out = stream(client, key) if (i + n) % 2 else unary(client, key)
                n += 1
                with lock:
                    outcomes.append(out)

    with ThreadPoolExecutor(WORKERS) as pool:
        futures = [pool.submit(worker, i) for i in range(WORKERS)]
        time.sleep(1.5)
        gw.kill9()  # mid-load: requests are in flight, records are being written
        time.sleep(0.3)
        stop.set()
        for f in futures:
            f.result()

    complete = [o for o in outcomes if o.complete]
    incomplete = [o for o in outcomes if not o.complete]
    assert len(complete) >= 50, len(complete)
    assert {o.kind for o in complete} == {"unary", "stream"}
    # The kill caught answers mid-way: their headers had arrived, their end never did.
    assert any(o.request_id for o in incomplete), "no request was in flight at the kill"

    gw.start()  # the same database, after the crash
    db = sqlite_url(gw)
    recs = records(db)
    counts = Counter(r["request_id"] for r in recs)
    assert not [rid for rid, n in counts.items() if n > 1], "a record was duplicated"
    missing = [o for o in complete if o.request_id not in counts]
    assert not missing, f"{len(missing)} complete answers have no record"
    # The spent amount was committed with the records, in the same transactions.
    assert spent_nanos(db, "loaded") == sum(r["cost_nanos"] for r in recs)

    # The restarted gateway serves and records as before.
    with httpx.Client(base_url=gw.base_url, timeout=10) as client:
        again = unary(client, key)
    assert again.complete
    assert len(records(db, request_id=again.request_id)) == 1
