"""Files expire (and abandoned uploads with them), a key's storage is capped, and a budget
reserves for a file by its real size rather than the model's whole input limit."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from google.genai import errors
from sqlalchemy import create_engine, update
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_process import GatewayProcess
from tests.resources.gateways import client, eventually, start

from gemgate.store.resource_tables import gemini_files


@pytest.fixture(scope="module")
def gw(
    google_a: FakeGemini, google_b: FakeGemini, openai_fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    proc = start(
        tmp_path_factory.mktemp("lifecycle"), google_a, google_b, openai_fake,
        files_extra="quota_mb = 1\nprune_s = 0.2",
    )
    yield proc
    proc.stop()


def _age(gw: GatewayProcess, **values: datetime) -> None:
    engine = create_engine(f"sqlite:///{gw.workdir}/gemgate.db")
    with engine.begin() as conn:
        conn.execute(update(gemini_files).values(**values))
    engine.dispose()


def test_expired_files_and_abandoned_uploads_are_removed(gw: GatewayProcess, tmp_path: Path) -> None:
    key = gw.create_key("expiring")
    note = tmp_path / "n.txt"
    note.write_text("short-lived")
    c = client(gw, key)
    uploaded = c.files.upload(file=note)
    assert uploaded.name is not None
    stored = list((gw.workdir / "files").rglob(uploaded.name.removeprefix("files/")))
    assert len(stored) == 1
    started = httpx.post(
        f"{gw.base_url}/upload/v1beta/files",
        headers={"x-goog-api-key": key, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                 "X-Goog-Upload-Header-Content-Length": "100", "X-Goog-Upload-Header-Content-Type": "text/plain"},
    )
    url = started.headers["x-goog-upload-url"]
    assert httpx.post(url, content=b"x" * 10, headers={"X-Goog-Upload-Command": "upload",
                                                      "X-Goog-Upload-Offset": "0"}).status_code == 200
    past = datetime.now(UTC) - timedelta(seconds=1)
    _age(gw, expires_at=past, upload_expires_at=past)

    def gone() -> bool:
        try:
            c.files.get(name=uploaded.name)
        except errors.ClientError as exc:
            return exc.code == 404 and not stored[0].exists()
        return False

    eventually(gone)
    query = httpx.post(url, headers={"X-Goog-Upload-Command": "query"})
    assert query.status_code == 404


def test_a_keys_storage_is_capped(gw: GatewayProcess) -> None:
    key = gw.create_key("capped")
    headers = {"x-goog-api-key": key, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
               "X-Goog-Upload-Header-Content-Type": "text/plain"}
    ok = httpx.post(f"{gw.base_url}/upload/v1beta/files", headers={**headers, "X-Goog-Upload-Header-Content-Length": "600000"})
    assert ok.status_code == 200
    over = httpx.post(f"{gw.base_url}/upload/v1beta/files", headers={**headers, "X-Goog-Upload-Header-Content-Length": "600000"})
    assert over.status_code == 429
    error = over.json()["error"]
    assert error["status"] == "RESOURCE_EXHAUSTED"
    assert any(d.get("violations", [{}])[0].get("subject") == "storage:capped" for d in error["details"] if "violations" in d)


def test_a_budget_reserves_for_a_file_by_its_size(gw: GatewayProcess, tmp_path: Path) -> None:
    key = gw.create_key("thrifty", "--budget-usd", "0.01")
    c = client(gw, key)
    small = tmp_path / "small.txt"
    small.write_text("tiny file " * 20)
    tiny = c.files.upload(file=small)
    # Bounded by the model's 1M-token input limit this would reserve $0.30: refused.
    reply = c.models.generate_content(model="gemini-2.5-flash", contents=[tiny, "go"], config={"max_output_tokens": 100})
    assert reply.text
    large = tmp_path / "large.txt"
    large.write_text("x" * 900_000)
    big = c.files.upload(file=large)
    with pytest.raises(errors.APIError) as refused:
        c.models.generate_content(model="gemini-2.5-flash", contents=[big, "go"], config={"max_output_tokens": 100})
    assert refused.value.code == 402
