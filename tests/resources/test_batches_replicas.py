"""Two replicas on one database: a batch is worked by exactly one of them (its lease); when
that replica dies mid-batch, the other resumes it, running only the items not yet done."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import types
from sqlalchemy import create_engine, select
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.resources.gateways import client, eventually, start

from gemgate.store.tables import usage_records

ITEMS = 6


def _records(db: Path, batch_id: str) -> list[dict[str, Any]]:
    engine = create_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(usage_records).where(usage_records.c.batch_id == batch_id)).all()
        return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


def _finished(c: genai.Client, name: str) -> types.BatchJob | None:
    job = c.batches.get(name=name)
    return job if job.state is not None and job.state.name in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED") else None


def test_a_batch_survives_the_replica_working_it(
    google_a: FakeGemini, google_b: FakeGemini, openai_fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("replicas")
    db = root / "shared.db"
    options: dict[str, Any] = {"database_url": f"sqlite:///{db}", "tables": "[batches]\nlease_s = 2"}
    (root / "a").mkdir()
    (root / "b").mkdir()
    a = start(root / "a", google_a, google_b, openai_fake, **options)
    b = start(root / "b", google_a, google_b, openai_fake, **options)
    try:
        key = a.create_key("replicated")
        ca, cb = client(a, key), client(b, key)
        job = ca.batches.create(
            model="gemma-3-270m",
            src=[types.InlinedRequest(contents=f"Tell a story about the number {i}.",
                                      config=types.GenerateContentConfig(max_output_tokens=24)) for i in range(ITEMS)],
        )
        assert job.name is not None
        batch_id = job.name.split("/")[1]

        def ok_rows() -> list[dict[str, Any]]:
            return [r for r in _records(db, batch_id) if r["status"] == "ok"]

        eventually(lambda: len(ok_rows()) >= 2, timeout=60)
        assert len(ok_rows()) < ITEMS, "the batch finished before its replica could be stopped"
        assert cb.batches.get(name=job.name).name == job.name  # any replica serves it
        a.kill9()
        done = eventually(lambda: _finished(cb, job.name or ""), timeout=120, every=0.5)
        assert done.state is not None and done.state.name == "JOB_STATE_SUCCEEDED"
        assert done.dest is not None and done.dest.inlined_responses is not None
        assert len(done.dest.inlined_responses) == ITEMS
        assert all(r.response is not None for r in done.dest.inlined_responses)
        per_item = Counter(str(r["request_id"]).split("-")[1] for r in ok_rows())
        assert sorted(per_item) == sorted(str(i) for i in range(ITEMS))
        assert set(per_item.values()) == {1}  # no finished item was run again
    finally:
        a.stop()
        b.stop()
