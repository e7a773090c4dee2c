"""Usage reports: ``gemgate usage`` as table, CSV and JSON, grouped and filtered, and the same
numbers at ``GET /admin/usage`` for holders of the admin key."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, insert
from tests.billing.gateways import ADMIN_KEY, MODEL, sqlite_url, start, stream_events, usd
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

from gemgate.billing.ledger import LedgerWriter
from gemgate.store import make_engine, migrate
from gemgate.store.tables import usage_records

SUMMED = (
    "prompt_tokens",
    "cached_tokens",
    "tool_use_prompt_tokens",
    "thoughts_tokens",
    "output_text",
    "output_image",
    "output_audio",
    "total_tokens",
    "cost_nanos",
)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# Past records: (request id, key, model, started at UTC, cost nanos, interrupted)
SEEDED = [
    ("s1", "alice", "model-a", at("2025-03-01T08:00:00"), 1_000, False),
    ("s2", "alice", "model-b", at("2025-03-01T23:30:00"), 2_500, True),
    ("s3", "bob", "model-a", at("2025-03-02T00:10:00"), 40_000, False),
    ("s4", "bob", "model-a", at("2025-03-02T12:00:00"), 7, False),
    ("s5", "alice", "model-a", at("2025-03-03T09:00:00"), 123_456_789, False),
]


def seeded_record(
    i: int, rid: str, key: str, model: str, when: datetime, cost: int, cut: bool
) -> dict:
    tokens = {name: (i + 1) * (j + 3) for j, name in enumerate(SUMMED[:-1])}
    return {
        "request_id": rid,
        "key_id": None,
        "key_name": key,
        "model": model,
        "provider": "google",
        "door": "gemini",
        "method": "generateContent",
        "status": "interrupted" if cut else "ok",
        "http_status": 499 if cut else 200,
        **tokens,
        "cost_nanos": cost,
        "estimated": i == 3,
        "interrupted": cut,
        "streamed": cut,
        "latency_ms": 10,
        "ttfb_ms": 5,
        "started_at": when,
        "finished_at": when + timedelta(seconds=1),
    }


@pytest.fixture(scope="module")
def gw(
    fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("reports"), fake_google)
    engine = create_engine(sqlite_url(proc))
    with engine.begin() as conn:
        conn.execute(
            insert(usage_records), [seeded_record(i, *row) for i, row in enumerate(SEEDED)]
        )
    engine.dispose()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def today(gw: GatewayProcess, fake_google: FakeGemini) -> dict[str, Any]:
    """Three requests served now by the gateway, with key 'carol'."""
    fake_google.reset()  # module fixtures run before the per-test reset
    key = gw.create_key("carol")
    headers = {"x-goog-api-key": key}
    body = {"contents": [{"parts": [{"text": "one two three"}]}]}
    costs = []
    with httpx.Client(base_url=gw.base_url, timeout=30, headers=headers) as client:
        for _ in range(2):
            r = client.post(f"/v1beta/models/{MODEL}:generateContent", json=body)
            assert r.status_code == 200
            costs.append(int(r.headers["x-gemgate-cost-usd"].replace(".", "")))
        fake_google.script(MODEL, stream=stream_events(3), method="streamGenerateContent")
        r = client.post(f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse", json=body)
        assert r.status_code == 200 and "finishReason" in r.text
    costs.append(7 * 300 + 15 * 2500)  # the stream's last usage: 7 prompt, 15 output tokens
    return {"day": datetime.now(UTC).date().isoformat(), "cost": sum(costs), "requests": 3}


def cli_json(gw: GatewayProcess, *args: str) -> list[dict[str, Any]]:
    return json.loads(gw.cli("usage", "--format", "json", *args).stdout)


def admin(gw: GatewayProcess, params: dict[str, str] | None = None, **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", {"authorization": f"Bearer {ADMIN_KEY}"})
    return httpx.get(gw.base_url + "/admin/usage", params=params, headers=headers, timeout=30, **kw)


def expected(rows: list[tuple]) -> dict[str, Any]:
    recs = [seeded_record(i, *row) for i, row in enumerate(SEEDED) if row in rows]
    out: dict[str, Any] = {
        "requests": len(recs),
        "interrupted": sum(r["interrupted"] for r in recs),
        "estimated": sum(r["estimated"] for r in recs),
        "errors": sum(r["status"] == "error" for r in recs),
    }
    for name in ("prompt_text", "prompt_image", "prompt_audio", "prompt_video", "prompt_document"):
        out[name] = sum(r.get(name, 0) for r in recs)
    for name in SUMMED:
        out[name] = sum(r[name] for r in recs)
    out["cost_usd"] = usd(out["cost_nanos"])
    return out


def test_group_by_day_and_filters(gw: GatewayProcess, today: dict[str, Any]) -> None:
    rows = cli_json(gw, "--group-by", "day", "--key", "alice")
    assert [r["day"] for r in rows] == ["2025-03-01", "2025-03-03"]
    assert rows[0] == {"day": "2025-03-01", **expected(SEEDED[0:2])}
    assert rows[1] == {"day": "2025-03-03", **expected(SEEDED[4:5])}

    every_day = cli_json(gw, "--group-by", "day")
    assert [r["day"] for r in every_day] == ["2025-03-01", "2025-03-02", "2025-03-03", today["day"]]
    assert every_day[1] == {"day": "2025-03-02", **expected(SEEDED[2:4])}
    assert every_day[3]["requests"] == today["requests"]
    assert every_day[3]["cost_nanos"] == today["cost"]

    # since/until: inclusive/exclusive, dates are UTC midnights, offsets are honoured.
    window = cli_json(gw, "--since", "2025-03-02T01:00:00+02:00", "--until", "2025-03-02")
    assert window == [expected([SEEDED[1]])]  # 23:30 UTC on the 1st; 08:00 is before it
    assert cli_json(gw, "--since", "2025-03-02", "--until", "2025-03-03") == [expected(SEEDED[2:4])]
    assert cli_json(gw, "--until", "2025-01-01") == []


def test_group_by_model_and_key(gw: GatewayProcess, today: dict[str, Any]) -> None:
    by_model = cli_json(gw, "--group-by", "model", "--until", "2025-04-01")
    assert by_model == [
        {"model": "model-a", **expected([SEEDED[i] for i in (0, 2, 3, 4)])},
        {"model": "model-b", **expected([SEEDED[1]])},
    ]
    by_key = cli_json(gw, "--group-by", "key", "--model", "model-a", "--until", "2025-04-01")
    assert by_key == [
        {"key": "alice", **expected([SEEDED[0], SEEDED[4]])},
        {"key": "bob", **expected(SEEDED[2:4])},
    ]
    (carol,) = cli_json(gw, "--key", "carol")
    assert carol["requests"] == 3 and carol["cost_nanos"] == today["cost"]
    assert carol["cost_usd"] == usd(today["cost"])


def test_csv_and_table_show_the_same_numbers(gw: GatewayProcess, today: dict[str, Any]) -> None:
    rows = cli_json(gw, "--group-by", "key")
    text = gw.cli("usage", "--group-by", "key", "--format", "csv").stdout
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["key"] for r in parsed] == [r["key"] for r in rows] == ["alice", "bob", "carol"]
    for got, want in zip(parsed, rows, strict=True):
        assert got["cost_usd"] == want["cost_usd"]
        assert int(got["requests"]) == want["requests"]
        assert int(got["total_tokens"]) == want["total_tokens"]
    table = gw.cli("usage", "--group-by", "key", "--format", "table").stdout
    for want in rows:
        assert want["key"] in table
    wide = gw.cli("usage", "--group-by", "model", "--format", "table").stdout
    assert "model-a" in wide and "model-b" in wide and MODEL in wide


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"group_by": "day"},
        {"group_by": "model", "key": "alice"},
        {"group_by": "key", "model": "model-a"},
        {"since": "2025-03-02", "until": "2025-03-03", "group_by": "key"},
        {"since": "2025-03-02T01:00:00+02:00", "until": "2025-03-02"},
    ],
)
def test_admin_usage_equals_the_cli(
    gw: GatewayProcess, today: dict[str, Any], params: dict[str, str]
) -> None:
    args = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
    resp = admin(gw, params)
    assert resp.status_code == 200, resp.text
    rows = resp.json()["rows"]
    assert rows == cli_json(gw, *args)
    assert rows and all(r["cost_usd"] == usd(r["cost_nanos"]) for r in rows)


def test_admin_auth_and_errors(gw: GatewayProcess) -> None:
    ok = admin(gw, headers={"x-goog-api-key": ADMIN_KEY})
    assert ok.status_code == 200 and ok.json()["rows"]

    def error(resp: httpx.Response, code: int, status: str) -> dict:
        assert resp.status_code == code, resp.text
        err = resp.json()["error"]
        assert err["code"] == code and err["status"] == status and err["message"]
        return err

    error(admin(gw, headers={}), 401, "UNAUTHENTICATED")
    error(admin(gw, headers={"authorization": "Bearer wrong"}), 403, "PERMISSION_DENIED")
    error(admin(gw, headers={"x-goog-api-key": "wrong"}), 403, "PERMISSION_DENIED")
    # An API key for models is not an admin key.
    key = gw.create_key("not-admin")
    error(admin(gw, headers={"x-goog-api-key": key}), 403, "PERMISSION_DENIED")
    # Without the key nothing else is revealed, not even which paths exist.
    error(httpx.get(gw.base_url + "/admin/nothing", timeout=30), 401, "UNAUTHENTICATED")

    bad = error(admin(gw, {"group_by": "week"}), 400, "INVALID_ARGUMENT")
    assert "group_by" in bad["message"]
    assert bad["details"][0]["fieldViolations"][0]["field"] == "group_by"
    assert "since" in error(admin(gw, {"since": "yesterday"}), 400, "INVALID_ARGUMENT")["message"]
    assert "colour" in error(admin(gw, {"colour": "red"}), 400, "INVALID_ARGUMENT")["message"]
    auth = {"authorization": f"Bearer {ADMIN_KEY}"}
    error(httpx.get(gw.base_url + "/admin/nothing", headers=auth, timeout=30), 404, "NOT_FOUND")
    error(
        httpx.post(gw.base_url + "/admin/usage", headers=auth, timeout=30), 405, "INVALID_ARGUMENT"
    )


def test_ledger_rows_store_times_as_sqlalchemy_does(tmp_path: Path) -> None:
    """The ledger's compiled statements store values exactly as the Core tables would."""
    engine = make_engine(f"sqlite:///{tmp_path}/fmt.db")
    migrate(engine)
    moment = datetime(2026, 11, 21, 8, 4, 59, 219667, tzinfo=UTC)
    record = {c: 0 for c in (
        "prompt_tokens", "prompt_text", "prompt_image", "prompt_audio", "prompt_video", "prompt_document",
        "cached_tokens", "tool_use_prompt_tokens", "thoughts_tokens", "output_text", "output_image",
        "output_audio", "total_tokens", "cost_nanos", "latency_ms", "http_status",
    )}
    record.update(request_id="r1", key_id=None, key_name=None, model="m", provider="p", door="gemini",
                  method="generateContent", status="ok", estimated=False, interrupted=True, streamed=False,
                  ttfb_ms=None, error=None, started_at=moment, finished_at=moment, channel="p/m",
                  upstream_key=None, attempts=1, failed_attempts=None)

    async def write() -> None:
        writer = LedgerWriter(engine)
        writer.start()
        await writer.commit(record)
        writer.close()

    asyncio.run(write())
    with sqlite3.connect(tmp_path / "fmt.db") as db:
        row = db.execute("SELECT started_at, interrupted FROM usage_records").fetchone()
    assert row == ("2026-11-21 08:04:59.219667", 1)
