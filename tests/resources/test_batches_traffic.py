"""A batch the gateway runs itself gives way to interactive requests: while it works
through its items on the local model, a client's request waits for at most the item in
progress, not for the batch."""

from __future__ import annotations

import time
from collections.abc import Callable

from google.genai import types
from tests.gateway_process import GatewayProcess
from tests.resources.gateways import client, eventually, records

from gemgate.store.tables import usage_records


def test_interactive_requests_are_not_queued_behind_a_batch(
    resource_gw: GatewayProcess, make_key: Callable[..., str]
) -> None:
    c = client(resource_gw, make_key())
    job = c.batches.create(
        model="gemma-3-270m",
        src=[types.InlinedRequest(contents=f"Write a long story about ship {i}.",
                                  config=types.GenerateContentConfig(max_output_tokens=48)) for i in range(12)],
    )
    assert job.name is not None
    batch_id = job.name.split("/")[1]

    def done() -> list[dict[str, object]]:
        return [r for r in records(resource_gw, usage_records.c.batch_id == batch_id) if r["status"] == "ok"]

    eventually(lambda: len(done()) >= 1, timeout=60)
    item_ms = max(int(str(r["latency_ms"])) for r in done())
    before = len(done())
    for _ in range(3):
        started = time.monotonic()
        reply = c.models.generate_content(model="gemma-3-270m", contents="Say yes.",
                                          config=types.GenerateContentConfig(max_output_tokens=4))
        waited_ms = (time.monotonic() - started) * 1000
        assert reply.text is not None
        # At most the item in progress runs ahead of it (plus its own few tokens).
        assert waited_ms < 2 * item_ms + 3000, (waited_ms, item_ms)
    assert len(done()) - before <= 4  # the batch did not run ahead of the client
    assert len(done()) < 12
    c.batches.cancel(name=job.name)
