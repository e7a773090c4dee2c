"""The google-genai SDK's files API, unchanged, against the gateway: a 50 MB upload in
chunks, get / list / download / delete, and generate_content with the uploaded file on a
Google channel (copied once to that project), the local model and an OpenAI upstream."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from google.genai import errors
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.openai_upstream import FakeOpenAI
from tests.gateway_process import GatewayProcess
from tests.resources.gateways import client, eventually

MB = 1024 * 1024


def _sha(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(MB), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_a_50_mb_upload_in_chunks_then_get_list_download_delete(
    resource_gw: GatewayProcess, make_key: Callable[..., str], tmp_path: Path, version: str
) -> None:
    source = tmp_path / "data.bin"
    with source.open("wb") as f:
        for _ in range(50):
            f.write(os.urandom(MB))
    c = client(resource_gw, make_key(), version)
    uploaded = c.files.upload(file=source, config={"mime_type": "application/octet-stream", "display_name": "blob"})
    assert uploaded.name and uploaded.name.startswith("files/")
    assert uploaded.size_bytes == 50 * MB
    assert uploaded.state is not None and uploaded.state.name == "ACTIVE"
    assert uploaded.source is not None and uploaded.source.name == "UPLOADED"
    assert base64.b64decode(uploaded.sha256_hash or "").decode() == _sha(source)
    assert uploaded.uri == f"{resource_gw.base_url}/gemini/{version}/{uploaded.name}"
    assert uploaded.expiration_time and uploaded.create_time
    assert (uploaded.expiration_time - uploaded.create_time).total_seconds() == pytest.approx(48 * 3600, abs=5)

    got = c.files.get(name=uploaded.name)
    assert (got.display_name, got.mime_type, got.size_bytes) == ("blob", "application/octet-stream", 50 * MB)
    assert uploaded.name in [f.name for f in c.files.list()]

    target = tmp_path / "back.bin"
    c.files.download(file=uploaded, destination=str(target))
    assert _sha(target) == _sha(source)

    c.files.delete(name=uploaded.name)
    with pytest.raises(errors.ClientError) as caught:
        c.files.get(name=uploaded.name)
    assert caught.value.code == 404
    assert uploaded.name not in [f.name for f in c.files.list()]


def test_listing_pages_at_most_100(resource_gw: GatewayProcess, make_key: Callable[..., str], tmp_path: Path) -> None:
    c = client(resource_gw, make_key())
    note = tmp_path / "n.txt"
    note.write_text("hello")
    names = {c.files.upload(file=note).name for _ in range(5)}
    pager = c.files.list(config={"page_size": 2})
    assert len(pager.page) == 2
    assert {f.name for f in pager} == names


def test_generate_with_an_uploaded_file_on_a_google_channel(
    resource_gw: GatewayProcess, make_key: Callable[..., str], google_a: FakeGemini, tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("the launch code is tangerine")
    c = client(resource_gw, make_key())
    uploaded = c.files.upload(file=note)
    for _ in range(2):
        reply = c.models.generate_content(model="gemini-2.5-flash", contents=[uploaded, "What is the code?"])
        assert reply.text is not None and "tangerine" in reply.text  # the fake read the file
    # Copied to the upstream project once, with the same bytes; the calls named the copy.
    starts = [r for r in google_a.requests if r.path.endswith("/upload/v1beta/files") and "upload_id" not in r.query]
    assert len(starts) == 1
    copies = list(google_a.files.values())
    assert len(copies) == 1 and bytes(copies[0].data) == note.read_bytes()
    calls = [r for r in google_a.requests if r.rpc == "generateContent"]
    uris = {p["fileData"]["fileUri"] for r in calls for p in r.json["contents"][0]["parts"] if "fileData" in p}
    assert uris == {f"{google_a.base_url}/v1beta/{copies[0].name}"}
    assert all(r.headers.get("x-goog-api-key") for r in google_a.requests)
    # Deleting the file deletes its copy upstream too.
    assert uploaded.name is not None
    c.files.delete(name=uploaded.name)
    eventually(lambda: not google_a.files)


def test_generate_with_an_uploaded_file_on_the_local_model(
    resource_gw: GatewayProcess, make_key: Callable[..., str], tmp_path: Path
) -> None:
    note = tmp_path / "facts.txt"
    note.write_text("Paris is the capital of France.")
    c = client(resource_gw, make_key(), "v1beta")
    uploaded = c.files.upload(file=note)
    reply = c.models.generate_content(
        model="gemma-3-270m", contents=[uploaded, "What is the capital of France?"], config={"max_output_tokens": 16}
    )
    assert reply.text
    assert reply.usage_metadata is not None and (reply.usage_metadata.prompt_token_count or 0) > 8

    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Page >> endobj\n%%EOF\n")
    doc = c.files.upload(file=pdf)
    with pytest.raises(errors.ClientError) as caught:
        c.models.generate_content(model="gemma-3-270m", contents=["Summarise", doc])
    assert caught.value.code == 400
    assert "contents[0].parts[1].fileData" in str(caught.value.message)


def test_an_openai_channel_gets_a_text_file_inline(
    resource_gw: GatewayProcess, make_key: Callable[..., str], openai_fake: FakeOpenAI, tmp_path: Path
) -> None:
    note = tmp_path / "note.md"
    note.write_text("# Notes\nthe password is swordfish")
    c = client(resource_gw, make_key())
    uploaded = c.files.upload(file=note, config={"mime_type": "text/markdown"})
    reply = c.models.generate_content(model="gpt-4o-mini", contents=[uploaded, "What is the password?"])
    assert reply.text and "swordfish" in reply.text
    sent = openai_fake.requests[-1].json
    assert "swordfish" in str(sent["messages"])


def test_count_tokens_uses_the_files_real_size(
    resource_gw: GatewayProcess, make_key: Callable[..., str], tmp_path: Path
) -> None:
    import struct
    import zlib

    def png(width: int, height: int) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
        raw = zlib.compress(b"".join(b"\x00" + b"\x00" * (3 * width) for _ in range(height)))
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")

    image = tmp_path / "big.png"
    image.write_bytes(png(1000, 1000))  # 2 x 2 tiles of 258 tokens
    c = client(resource_gw, make_key())
    uploaded = c.files.upload(file=image)
    alone = c.models.count_tokens(model="gemini-2.5-flash", contents=["hi"]).total_tokens or 0
    counted = c.models.count_tokens(model="gemini-2.5-flash", contents=[uploaded, "hi"]).total_tokens
    assert counted == alone + 4 * 258


def test_an_expired_upstream_copy_is_uploaded_again_and_streams_work(
    resource_gw: GatewayProcess, make_key: Callable[..., str], google_a: FakeGemini, tmp_path: Path
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import create_engine, update

    from gemgate.store.resource_tables import file_copies

    note = tmp_path / "again.txt"
    note.write_text("copy me twice")
    c = client(resource_gw, make_key())
    uploaded = c.files.upload(file=note)
    chunks = list(c.models.generate_content_stream(model="gemini-2.5-flash", contents=[uploaded, "go"]))
    assert "copy me twice" in "".join(ch.text or "" for ch in chunks)
    engine = create_engine(f"sqlite:///{resource_gw.workdir}/gemgate.db")
    with engine.begin() as conn:
        conn.execute(update(file_copies).values(expires_at=datetime.now(UTC) + timedelta(minutes=5)))
    engine.dispose()
    c.models.generate_content(model="gemini-2.5-flash", contents=[uploaded, "go"])
    starts = [r for r in google_a.requests if r.path.endswith("/upload/v1beta/files") and "upload_id" not in r.query]
    assert len(starts) == 2  # a copy about to expire is not used: uploaded again


def test_count_tokens_counts_a_cache(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    from google.genai import types

    key = make_key()
    c = client(resource_gw, key)
    cache = c.caches.create(model="gemini-2.5-flash", config=types.CreateCachedContentConfig(
        contents=[" ".join(f"w{i}" for i in range(1100))], ttl="60s"))
    body = {"generateContentRequest": {"model": "models/gemini-2.5-flash", "cachedContent": cache.name,
                                       "contents": [{"parts": [{"text": "hi"}]}]}}
    import httpx

    counted = httpx.post(f"{resource_gw.base_url}/v1beta/models/gemini-2.5-flash:countTokens", json=body,
                         headers={"x-goog-api-key": key}).json()
    assert counted["cachedContentTokenCount"] == 1100
    assert counted["totalTokens"] > 1100
