"""The request log keeps ``[admin] log_retention_days`` (default 0: kept for ever): older usage records
and kept bodies are deleted in the background, in batches, while the gateway serves."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from tests.admin.console_gateway import admin, generate, start
from tests.fakes.gemini_upstream import FakeGemini

from gemgate.settings import ConfigError, parse
from gemgate.store import make_engine, migrate
from gemgate.store.tables import request_bodies, usage_records


def _record(i: int, started: datetime) -> dict[str, object]:
    return {
        "request_id": f"old-{i}", "model": "gemini-2.5-flash", "provider": "google", "door": "gemini",
        "method": "generateContent", "status": "ok", "http_status": 200,
        "started_at": started, "finished_at": started,
    }


def test_old_records_are_pruned_and_new_ones_kept(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> None:
    workdir = tmp_path_factory.mktemp("retention")
    url = f"sqlite:///{workdir}/gemgate.db"
    engine = make_engine(url)
    migrate(engine)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(usage_records), [_record(i, now - timedelta(days=8)) for i in range(2500)])
        conn.execute(insert(usage_records), [_record(10_000 + i, now - timedelta(days=6)) for i in range(10)])
        conn.execute(insert(request_bodies), [{"request_id": "old-1", "created_at": now - timedelta(days=8), "request": "{}"}])
    gw = start(workdir, fake_google, database_url=url, extra="log_retention_days = 7")
    try:
        plain = admin(gw).post("/keys", json={"name": "fresh"}).json()["key"]
        assert generate(gw, plain).status_code == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                left = conn.execute(select(func.count()).select_from(usage_records)).scalar()
                bodies = conn.execute(select(func.count()).select_from(request_bodies)).scalar()
            if left == 11 and bodies == 0:  # one pass prunes the records, then the bodies
                break
            time.sleep(0.2)
        assert left == 11  # ten six days old and the new one
        assert bodies == 0
        assert "request log pruned: 2500 usage_records" in gw.log.read_text()
    finally:
        gw.stop()
        engine.dispose()


def test_retention_setting_is_strict() -> None:
    assert parse({}, {}).admin.log_retention_days == 0
    assert parse({"admin": {"log_retention_days": 0}}, {}).admin.log_retention_days == 0
    for bad in (-1, "30", 1.5, True):
        with pytest.raises(ConfigError, match="log_retention_days"):
            parse({"admin": {"log_retention_days": bad}}, {})
