"""The upload protocol on the wire (offsets, query and resume, cancel, multipart), files
owned per key, and bad input answered in Google's envelope."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from google.genai import errors
from tests.gateway_process import GatewayProcess
from tests.resources.gateways import client


def _start(gw: GatewayProcess, key: str, size: int, mime: str = "text/plain", prefix: str = "") -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}{prefix}/upload/v1beta/files",
        headers={
            "x-goog-api-key": key,
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": str(size),
            "X-Goog-Upload-Header-Content-Type": mime,
        },
        json={"file": {"display_name": "wire"}},
    )


def _chunk(url: str, data: bytes, offset: int, command: str = "upload", **headers: str) -> httpx.Response:
    return httpx.post(
        url,
        content=data,
        headers={"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset), **headers},
    )


def test_resumable_upload_resumes_where_it_stopped(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    key = make_key()
    data = b"0123456789" * 1000
    started = _start(resource_gw, key, len(data), prefix="/gemini")
    assert started.status_code == 200
    url = started.headers["x-goog-upload-url"]
    assert url.startswith(f"{resource_gw.base_url}/gemini/upload/v1beta/files?upload_id=")
    assert started.headers["x-goog-upload-status"] == "active"

    first = _chunk(url, data[:4000], 0)  # no API key: the upload id is the credential
    assert first.status_code == 200 and first.headers["x-goog-upload-status"] == "active"
    query = _chunk(url, b"", 0, "query")
    assert query.headers["x-goog-upload-size-received"] == "4000"
    assert query.headers["x-goog-upload-status"] == "active"

    wrong = _chunk(url, data[4000:], 3000)
    assert wrong.status_code == 400
    assert wrong.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "4000" in wrong.json()["error"]["message"]
    assert wrong.headers["x-goog-upload-status"]

    done = _chunk(url, data[4000:], 4000, "upload, finalize")
    assert done.status_code == 200 and done.headers["x-goog-upload-status"] == "final"
    file = done.json()["file"]
    assert file["sizeBytes"] == str(len(data)) and file["state"] == "ACTIVE"
    assert file["displayName"] == "wire" and file["mimeType"] == "text/plain"
    download = httpx.get(f"{resource_gw.base_url}/v1beta/{file['name']}:download?alt=media", headers={"x-goog-api-key": key})
    assert download.content == data
    # The upload id is spent.
    assert _chunk(url, b"x", len(data)).status_code == 404


def test_an_upload_cannot_overrun_its_declared_size(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    key = make_key()
    url = _start(resource_gw, key, 10).headers["x-goog-upload-url"]
    over = _chunk(url, b"x" * 11, 0, "upload, finalize")
    assert over.status_code == 400 and over.json()["error"]["status"] == "INVALID_ARGUMENT"
    short = _chunk(url, b"x" * 5, 0, "upload, finalize")
    assert short.status_code == 400 and "declared 10" in short.json()["error"]["message"]


def test_cancel_ends_an_upload(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    url = _start(resource_gw, make_key(), 10).headers["x-goog-upload-url"]
    cancelled = _chunk(url, b"", 0, "cancel")
    assert cancelled.status_code == 200 and cancelled.headers["x-goog-upload-status"] == "cancelled"
    assert _chunk(url, b"x" * 10, 0, "upload, finalize").status_code == 404


def test_multipart_upload(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    key = make_key()
    data = bytes(range(256)) * 300
    boundary = "gemgate-test-boundary"
    body = (
        f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
        '{"file": {"displayName": "multi"}}\r\n'
        f"--{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    resp = httpx.post(
        f"{resource_gw.base_url}/upload/v1/files?uploadType=multipart",
        headers={"x-goog-api-key": key, "Content-Type": f"multipart/related; boundary={boundary}"},
        content=body,
    )
    assert resp.status_code == 200, resp.text
    file = resp.json()["file"]
    assert file["sizeBytes"] == str(len(data)) and file["displayName"] == "multi"
    assert file["mimeType"] == "application/octet-stream"
    got = httpx.get(f"{resource_gw.base_url}/v1/{file['name']}:download?alt=media", headers={"x-goog-api-key": key})
    assert hashlib.sha256(got.content).hexdigest() == hashlib.sha256(data).hexdigest()


def test_another_key_never_sees_a_file(
    resource_gw: GatewayProcess, make_key: Callable[..., str], tmp_path: Path
) -> None:
    owner, other = make_key(), make_key()
    note = tmp_path / "secret.txt"
    note.write_text("owner's secret")
    owner_client = client(resource_gw, owner)
    mine = owner_client.files.upload(file=note)
    assert mine.name is not None
    theirs = client(resource_gw, other)
    for call in (lambda: theirs.files.get(name=mine.name), lambda: theirs.files.delete(name=mine.name)):
        with pytest.raises(errors.ClientError) as caught:
            call()
        assert caught.value.code == 404
    assert list(theirs.files.list()) == []
    download = httpx.get(f"{resource_gw.base_url}/v1/{mine.name}:download?alt=media", headers={"x-goog-api-key": other})
    assert download.status_code == 404
    with pytest.raises(errors.ClientError) as denied:
        theirs.models.generate_content(model="gemma-3-270m", contents=[mine, "read it"])
    assert denied.value.code == 403 and "owner's secret" not in str(denied.value)
    # An upload started by one key cannot be continued with another key.
    url = _start(resource_gw, owner, 4).headers["x-goog-upload-url"]
    assert _chunk(url, b"abcd", 0, "upload, finalize", **{"x-goog-api-key": other}).status_code == 404
    assert _chunk(url, b"abcd", 0, "upload, finalize", **{"x-goog-api-key": owner}).status_code == 200
    # And the owner still has the file.
    assert owner_client.files.get(name=mine.name).size_bytes == len("owner's secret")


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start"}, 400),  # no size
        ({"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
          "X-Goog-Upload-Header-Content-Length": "-5"}, 400),
        ({"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "upload"}, 400),
        ({"X-Goog-Upload-Protocol": "telepathy"}, 400),
        ({"X-Goog-Upload-Protocol": "resumable", "X-Goog-Upload-Command": "start",
          "X-Goog-Upload-Header-Content-Length": str(3 << 40)}, 400),  # beyond 2 GB
    ],
)
def test_bad_upload_requests_get_googles_envelope(
    resource_gw: GatewayProcess, make_key: Callable[..., str], headers: dict[str, str], status: int
) -> None:
    resp = httpx.post(
        f"{resource_gw.base_url}/upload/v1beta/files", headers={"x-goog-api-key": make_key(), **headers}, json={}
    )
    assert resp.status_code == status
    error = resp.json()["error"]
    assert error["code"] == status and error["status"] == "INVALID_ARGUMENT" and error["message"]


def test_no_key_and_bad_names(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    base = resource_gw.base_url
    assert httpx.post(f"{base}/upload/v1beta/files", json={}).status_code == 403
    assert httpx.get(f"{base}/v1beta/files").status_code == 403
    key = {"x-goog-api-key": make_key()}
    unknown = httpx.get(f"{base}/v1beta/files/0123456789abcdef01234567", headers=key)
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == "NOT_FOUND"
    bad = httpx.get(f"{base}/v1beta/files/NOT_A_NAME", headers=key)
    assert bad.status_code == 400
    assert httpx.get(f"{base}/v1beta/files?pageToken=garbage", headers=key).status_code == 400
    assert httpx.post(f"{base}/upload/v1beta/files?upload_id=nope", headers={"X-Goog-Upload-Command": "query"}).status_code == 404
