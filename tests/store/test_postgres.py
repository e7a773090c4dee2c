"""Scale-out: two gateway replicas on one PostgreSQL database and one Redis (both real, on
127.0.0.1), serving the fake Google upstream: migrations, the keys CLI, the ledger, usage
reports and one budget shared by both replicas."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import create_engine, insert, select
from tests.billing.gateways import (
    ADMIN_KEY,
    ADMIN_KEY_VAR,
    MODEL,
    config,
    keys_json,
    records,
    stream_events,
    text_cost,
    usd,
)
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

from gemgate.store.tables import api_keys, usage_records

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

SERVER = "postgresql://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/0"
UNARY = f"/v1beta/models/{MODEL}:generateContent"
STREAM = f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"


class Deployment:
    def __init__(self, db_url: str, replicas: list[GatewayProcess]) -> None:
        self.db_url = db_url
        self.replicas = replicas

    @property
    def a(self) -> GatewayProcess:
        return self.replicas[0]

    @property
    def b(self) -> GatewayProcess:
        return self.replicas[1]


@pytest.fixture(scope="module")
def deployment(
    fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    name = f"gemgate_test_{secrets.token_hex(5)}"
    prefix = f"gemgate-test-{secrets.token_hex(5)}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        # Far from UTC, so that reports must not follow the session's time zone.
        conn.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'Pacific/Kiritimati'")
    db_url = f"{SERVER}/{name}"
    text = config(fake_google, database_url=db_url, redis_url=REDIS_URL, redis_prefix=prefix)
    env = {UPSTREAM_KEY_VAR: fake_google.api_key, ADMIN_KEY_VAR: ADMIN_KEY}
    base: Path = tmp_path_factory.mktemp("postgres")
    replicas = []
    for i in range(2):
        (base / f"r{i}").mkdir()
        replicas.append(GatewayProcess(base / f"r{i}", text, env=env))
    # Both replicas start (and migrate the empty database) at the same time.
    errors: list[BaseException] = []

    def boot(gw: GatewayProcess) -> None:
        try:
            gw.start()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=boot, args=(gw,)) for gw in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert not errors, errors
        yield Deployment(db_url.replace("postgresql://", "postgresql+psycopg://"), replicas)
    finally:
        for gw in replicas:
            gw.stop()
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        client = redis.Redis.from_url(REDIS_URL)
        for k in client.scan_iter(match=f"{prefix}:*", count=500):
            client.delete(k)
        client.close()


def hello(words: int = 3, max_output: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contents": [{"role": "user", "parts": [{"text": " ".join(["word"] * words)}]}]
    }
    if max_output is not None:
        body["generationConfig"] = {"maxOutputTokens": max_output}
    return body


def wait(probe: Any, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.05)
    return False


def test_schema_and_keys_cli(deployment: Deployment) -> None:
    gw = deployment.a
    assert "up to date" in gw.cli("db", "upgrade").stdout
    key = gw.create_key("pg-cli", "--budget-usd", "2.5", "--expires", "2030-01-01")
    listed = keys_json(deployment.b)["pg-cli"]  # the other replica's config, same database
    assert listed["prefix"] == key[:10]
    assert listed["expires_at"] == "2030-01-01T00:00:00+00:00"
    assert (listed["budget_usd"], listed["spent_usd"]) == ("2.500000000", "0.000000000")
    assert "budget 3.000000000" in gw.cli("keys", "top-up", "pg-cli", "0.5").stdout
    # Both replicas accept the new key at once, and refuse it as soon as it is revoked.
    for replica in deployment.replicas:
        r = httpx.post(replica.base_url + UNARY, json=hello(), headers={"x-goog-api-key": key})
        assert r.status_code == 200, r.text
    gw.cli("keys", "revoke", "pg-cli")

    def refused(replica: GatewayProcess) -> bool:
        r = httpx.post(replica.base_url + UNARY, json=hello(), headers={"x-goog-api-key": key})
        return r.status_code == 403

    for replica in deployment.replicas:
        assert wait(lambda replica=replica: refused(replica))


def test_ledger_and_reports(deployment: Deployment, fake_google: FakeGemini) -> None:
    gw = deployment.a
    key = gw.create_key("pg-ledger")
    headers = {"x-goog-api-key": key}
    ids = []
    for replica in deployment.replicas:
        r = httpx.post(replica.base_url + UNARY, json=hello(3), headers=headers, timeout=30)
        assert r.status_code == 200
        assert r.headers["x-gemgate-cost-usd"] == usd(text_cost(3, 4))
        ids.append(r.headers["x-gemgate-request-id"])
    fake_google.script(MODEL, stream=stream_events(4), method="streamGenerateContent")
    r = httpx.post(deployment.b.base_url + STREAM, json=hello(3), headers=headers, timeout=30)
    assert r.status_code == 200 and r.text.count("data: ") == 4
    ids.append(r.headers["x-gemgate-request-id"])

    recs = records(deployment.db_url, key_name="pg-ledger")
    assert sorted(rec["request_id"] for rec in recs) == sorted(ids)
    costs = [text_cost(3, 4), text_cost(3, 4), text_cost(7, 20)]
    assert sorted(rec["cost_nanos"] for rec in recs) == sorted(costs)
    assert all(rec["started_at"].tzinfo is not None for rec in recs)
    assert keys_json(gw)["pg-ledger"]["spent_usd"] == usd(sum(costs))

    # One record from an evening long ago: 20:00 UTC is already the next day in the
    # database session's time zone (UTC+14); reports count UTC days.
    engine = create_engine(deployment.db_url)
    when = datetime(2025, 3, 1, 20, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(
            insert(usage_records).values(
                request_id="old-1",
                key_name="pg-ledger",
                model="model-x",
                provider="google",
                door="gemini",
                method="generateContent",
                status="ok",
                http_status=200,
                prompt_tokens=10,
                total_tokens=10,
                cost_nanos=999,
                interrupted=True,
                started_at=when,
                finished_at=when,
            )
        )
    engine.dispose()

    def usage(*args: str) -> list[dict[str, Any]]:
        return json.loads(gw.cli("usage", "--format", "json", "--key", "pg-ledger", *args).stdout)

    today = datetime.now(UTC).date().isoformat()
    by_day = usage("--group-by", "day")
    assert [(r["day"], r["requests"], r["cost_nanos"]) for r in by_day] == [
        ("2025-03-01", 1, 999),
        (today, 3, sum(costs)),
    ]
    assert by_day[0]["interrupted"] == 1 and by_day[1]["interrupted"] == 0
    assert isinstance(by_day[1]["output_text"], int) and by_day[1]["output_text"] == 4 + 4 + 20
    by_model = usage("--group-by", "model")
    assert [(r["model"], r["requests"]) for r in by_model] == [(MODEL, 3), ("model-x", 1)]
    # 09:59 at UTC+14 is 19:59 UTC: the bounds are compared as instants.
    window = usage("--since", "2025-03-02T09:59:00+14:00", "--until", "2025-03-01T20:01:00")
    assert [r["requests"] for r in window] == [1]
    assert usage("--until", "2025-03-01T20:00:00") == []
    (total,) = usage()
    assert total["cost_usd"] == usd(sum(costs) + 999)

    for replica in deployment.replicas:
        resp = httpx.get(
            replica.base_url + "/admin/usage",
            params={"key": "pg-ledger", "group_by": "day"},
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            timeout=30,
        )
        assert resp.status_code == 200 and resp.json()["rows"] == by_day


def test_one_budget_shared_by_both_replicas(
    deployment: Deployment, fake_google: FakeGemini
) -> None:
    fake_google.set_delay(0.2)
    budget = Decimal("0.001")
    key = deployment.a.create_key("pg-shared", "--budget-usd", str(budget))
    # Each replica spends from the budget first, one request at a time.
    warmup = [
        httpx.post(
            replica.base_url + UNARY,
            json=hello(40, 20),
            headers={"x-goog-api-key": key},
            timeout=60,
        )
        for replica in deployment.replicas
    ]
    assert [r.status_code for r in warmup] == [200, 200]
    n = 120

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=n)
        async with httpx.AsyncClient(limits=limits, timeout=60) as client:
            return await asyncio.gather(
                *(
                    client.post(
                        deployment.replicas[i % 2].base_url + UNARY,
                        json=hello(40, 20),
                        headers={"x-goog-api-key": key},
                    )
                    for i in range(n)
                )
            )

    responses = asyncio.run(run())
    burst = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 402]
    assert len(burst) + len(refused) == n and burst and refused
    # All arrived together, so the admitted reservations were all held at once: together
    # the two replicas admitted no more than what the warm-up left of one budget holds,
    # and both replicas refused the rest.
    worst = Decimal(re.findall(r"(\d+\.\d{9}) USD", refused[0].json()["error"]["message"])[0])
    left = budget - 2 * Decimal(text_cost(40, 20)) / 10**9
    assert len(burst) <= left / worst
    assert {r.url.port for r in refused} == {gw.port for gw in deployment.replicas}
    accepted = warmup + burst

    recs = records(deployment.db_url, key_name="pg-shared")
    assert sorted(r["request_id"] for r in recs) == sorted(
        r.headers["x-gemgate-request-id"] for r in accepted
    )
    engine = create_engine(deployment.db_url)
    with engine.connect() as conn:
        spent = conn.execute(
            select(api_keys.c.spent_nanos).where(api_keys.c.name == "pg-shared")
        ).scalar_one()
    engine.dispose()
    assert spent == sum(r["cost_nanos"] for r in recs) == len(accepted) * text_cost(40, 20)
    assert spent <= budget * 10**9
