"""Two replicas on PostgreSQL, file bytes in the database (``[files] store = "database"``):
an upload started on one continues on the other, and every resource is served by either."""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from google.genai import types
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_process import GatewayProcess
from tests.resources.gateways import client, start

pytestmark = pytest.mark.postgres
SERVER = "postgresql://postgres@127.0.0.1:5432"
MB = 1024 * 1024


@pytest.fixture(scope="module")
def replicas(
    google_a: FakeGemini, google_b: FakeGemini, openai_fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    name = f"gemgate_res_{secrets.token_hex(5)}"
    with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    root = tmp_path_factory.mktemp("pg-replicas")
    gws: list[GatewayProcess] = []
    try:
        for i in range(2):
            (root / f"r{i}").mkdir()
            gws.append(start(root / f"r{i}", google_a, google_b, openai_fake,
                             database_url=f"{SERVER}/{name}", files_extra='store = "database"'))
        yield gws[0], gws[1]
    finally:
        for gw in gws:
            gw.stop()
        with psycopg.connect(f"{SERVER}/test", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_upload_moves_between_replicas(replicas: tuple[GatewayProcess, GatewayProcess]) -> None:
    a, b = replicas
    key = a.create_key("pg-files")
    data = os.urandom(12 * MB)
    started = httpx.post(
        f"{a.base_url}/upload/v1beta/files",
        headers={"x-goog-api-key": key, "X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
                 "X-Goog-Upload-Header-Content-Length": str(len(data)),
                 "X-Goog-Upload-Header-Content-Type": "application/octet-stream"},
    )
    url_a = started.headers["x-goog-upload-url"]
    url_b = url_a.replace(a.base_url, b.base_url)
    first = httpx.post(url_a, content=data[: 8 * MB], headers={"X-Goog-Upload-Command": "upload", "X-Goog-Upload-Offset": "0"})
    assert first.status_code == 200 and first.headers["x-goog-upload-status"] == "active"
    query = httpx.post(url_b, headers={"X-Goog-Upload-Command": "query"})
    assert query.headers["x-goog-upload-size-received"] == str(8 * MB)
    last = httpx.post(url_b, content=data[8 * MB :], timeout=60,
                      headers={"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": str(8 * MB)})
    assert last.status_code == 200, last.text
    name = last.json()["file"]["name"]
    got = httpx.get(f"{a.base_url}/v1beta/{name}:download?alt=media", headers={"x-goog-api-key": key}, timeout=60)
    assert hashlib.sha256(got.content).digest() == hashlib.sha256(data).digest()
    assert httpx.delete(f"{b.base_url}/v1beta/{name}", headers={"x-goog-api-key": key}).status_code == 200
    assert httpx.get(f"{a.base_url}/v1beta/{name}", headers={"x-goog-api-key": key}).status_code == 404


def test_files_and_caches_made_on_one_replica_serve_on_the_other(
    replicas: tuple[GatewayProcess, GatewayProcess], google_a: FakeGemini, tmp_path: Path
) -> None:
    a, b = replicas
    key = a.create_key("pg-shared")
    ca, cb = client(a, key), client(b, key)
    note = tmp_path / "n.txt"
    note.write_text("the shared word is marmalade")
    uploaded = ca.files.upload(file=note)
    reply = cb.models.generate_content(model="gemini-2.5-flash", contents=[uploaded, "word?"])
    assert reply.text and "marmalade" in reply.text
    cache = ca.caches.create(model="gemini-2.5-flash", config=types.CreateCachedContentConfig(
        contents=[" ".join(f"w{i}" for i in range(1100))], ttl="300s"))
    assert cache.name is not None
    used = cb.models.generate_content(model="gemini-2.5-flash", contents="x",
                                      config=types.GenerateContentConfig(cached_content=cache.name))
    assert used.usage_metadata is not None and used.usage_metadata.cached_content_token_count
    assert len(google_a.caches) == 1  # B used A's copy: it was not made again
