"""Budgets through the real server: reservations refuse what a budget cannot cover, top-ups
apply to the running gateway, and 200 concurrent requests never spend more than the budget."""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterator
from decimal import Decimal

import httpx
import orjson
import pytest
from tests.billing.gateways import (
    MODEL,
    keys_json,
    records,
    spent_nanos,
    sqlite_url,
    start,
    text_cost,
    usd,
    wait_for,
)
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

from gemgate.limits.memory import MemoryBudgets
from gemgate.pipeline.admit import Admission
from gemgate.tokens import TokenCounter, default_gguf_path

PATH = f"/v1beta/models/{MODEL}:generateContent"
_names = itertools.count()


@pytest.fixture(scope="module")
def gw(
    fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("budget"), fake_google)
    yield proc
    proc.stop()


def body(words: int, max_output: int) -> dict:
    text = " ".join(f"w{i}" for i in range(words))
    return {
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "generationConfig": {"maxOutputTokens": max_output},
    }


def new_key(gw: GatewayProcess, budget_usd: str) -> tuple[str, str]:
    name = f"budget-{next(_names)}"
    return name, gw.create_key(name, "--budget-usd", budget_usd)


def test_over_budget_is_402_until_topped_up(gw: GatewayProcess, fake_google: FakeGemini) -> None:
    # Worst case of this request: ~5 prompt tokens at the highest input rate plus 100 output
    # tokens at 2.50 USD/1M = 0.00025 USD, more than the 0.0001 USD budget.
    name, key = new_key(gw, "0.0001")
    headers = {"x-goog-api-key": key}
    resp = httpx.post(gw.base_url + PATH, json=body(3, 100), headers=headers, timeout=30)
    assert resp.status_code == 402, resp.text
    err = resp.json()["error"]
    assert err["status"] == "RESOURCE_EXHAUSTED" and err["code"] == 402
    quota = [d for d in err["details"] if d["@type"].endswith("google.rpc.QuotaFailure")]
    assert quota[0]["violations"][0]["subject"] == f"budget:{name}"
    assert name in err["message"]
    assert not [r for r in fake_google.requests if r.rpc], "the upstream must not be called"
    assert records(sqlite_url(gw), key_name=name) == []

    # A top-up through the CLI reaches the running gateway without a restart.
    assert "budget 1.000100000" in gw.cli("keys", "top-up", name, "1").stdout

    def fits() -> httpx.Response | None:
        r = httpx.post(gw.base_url + PATH, json=body(3, 100), headers=headers, timeout=30)
        return r if r.status_code == 200 else None

    ok = wait_for(fits, 10, "the top-up to apply")
    rid = ok.headers["x-gemgate-request-id"]
    (rec,) = records(sqlite_url(gw), request_id=rid)
    # The fake counts one token per word: prompt 3, answer "echo: w0 w1 w2" = 4 tokens.
    assert rec["cost_nanos"] == text_cost(3, 4)
    assert ok.headers["x-gemgate-cost-usd"] == usd(rec["cost_nanos"])
    assert rec["status"] == "ok" and rec["key_name"] == name
    assert keys_json(gw)[name]["spent_usd"] == usd(rec["cost_nanos"])


def test_concurrent_requests_never_overspend(gw: GatewayProcess, fake_google: FakeGemini) -> None:
    fake_google.set_delay(0.2)
    budget = Decimal("0.002")
    name, key = new_key(gw, str(budget))
    # Each answer costs 40 x 300 + 20 x 2500 = 62_000 nanos; its reservation is larger (the
    # locally counted prompt at the highest input rate), so about 20 fit at once.
    per_request = text_cost(40, 20)
    n = 200
    assert n * per_request > budget * 10**9  # without the budget, all of them would overspend

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
        async with httpx.AsyncClient(base_url=gw.base_url, limits=limits, timeout=60) as client:

            async def burst(count: int) -> list[httpx.Response]:
                return await asyncio.gather(
                    *(
                        client.post(PATH, json=body(40, 20), headers={"x-goog-api-key": key})
                        for _ in range(count)
                    )
                )

            # 200 at once, then smaller bursts until nothing more fits: the budget drains
            # to less than one reservation, and never below zero.
            responses = await burst(n)
            assert sorted({r.status_code for r in responses}) == [200, 402]
            for _ in range(30):
                more = await burst(40)
                responses += more
                if all(r.status_code == 402 for r in more):
                    return responses
            raise AssertionError("the budget never ran out")

    responses = asyncio.run(run())
    statuses = sorted({r.status_code for r in responses})
    assert statuses == [200, 402], statuses
    accepted = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 402]
    for r in refused:
        assert r.json()["error"]["details"][1]["violations"][0]["subject"] == f"budget:{name}"

    db = sqlite_url(gw)
    recs = records(db, key_name=name)
    by_id: dict[str, list[dict]] = {}
    for rec in recs:
        by_id.setdefault(rec["request_id"], []).append(rec)
    assert len(recs) == len(accepted)
    for r in accepted:
        (rec,) = by_id[r.headers["x-gemgate-request-id"]]
        assert rec["status"] == "ok" and rec["cost_nanos"] == per_request
        assert r.headers["x-gemgate-cost-usd"] == usd(rec["cost_nanos"])
    for r in refused:
        assert r.headers["x-gemgate-request-id"] not in by_id

    spent = spent_nanos(db, name)
    assert spent == sum(rec["cost_nanos"] for rec in recs) == len(accepted) * per_request
    assert spent <= budget * 10**9
    # The last refusals: "... may cost up to X USD and Y USD remains", Y = budget - spent.
    last = refused[-1].json()["error"]["message"]
    worst, remains = (Decimal(w) for w in re.findall(r"(\d+\.\d{9}) USD", last))
    assert remains == budget - Decimal(spent) / 10**9 < worst
    listed = keys_json(gw)[name]
    assert Decimal(listed["spent_usd"]) <= Decimal(listed["budget_usd"]) == budget


def test_prompt_bound_from_body_size_holds() -> None:
    """Admission's cheap bound (the body's size, for a request without media) is never
    below the exact prompt count, however the text is escaped."""
    counter = TokenCounter(default_gguf_path())
    budgets = MemoryBudgets()
    pipeline = Admission(budgets=budgets, counter=counter)
    for text in ("hello", "é" * 50, "😀" * 40, "\\n\\t" * 30, "日本語のテキスト" * 20):
        request = {"systemInstruction": {"parts": [{"text": text}]},
                   "contents": [{"role": "user", "parts": [{"text": text}]}]}
        body = orjson.dumps(request)
        assert pipeline.prompt_bound(request, len(body)) >= counter.count_request(request).total
    with_media = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "AAAA"}}]}]}
    assert pipeline.prompt_bound(with_media, 10) >= 258  # media falls back to the media rules
