"""What the body log keeps of a body: secrets and media are gone, the rest is intact."""

from __future__ import annotations

import base64

import orjson

from gemgate.admin.bodies import MAX_STORED, Redactor


def test_secret_fields_credentials_in_text_and_media_are_redacted() -> None:
    image = base64.b64encode(bytes(3000)).decode()
    body = {
        "contents": [{"parts": [
            {"text": "use AIzaSyA-0123456789abcdef or sk-proj-abcdefghijklmnop please"},
            {"inline_data": {"mime_type": "audio/wav", "data": image}},
            {"fileData": {"fileUri": "gs://bucket/x"}},
        ]}],
        "messages": [{"content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64," + image}}]}],
        "source": {"type": "base64", "data": image},
        "api_key": "plain-secret", "Authorization": "Bearer abcdefghijkl", "x-goog-api-key": "k",
        "note": "the upstream key is upstream-secret-xyz",
        "blob": image,
    }
    out = Redactor(("upstream-secret-xyz",)).body(orjson.dumps(body))
    assert out is not None
    for secret in ("AIzaSyA-0123456789abcdef", "sk-proj-abcdefghijklmnop", "plain-secret",
                   "abcdefghijkl", "upstream-secret-xyz", image[:40]):
        assert secret not in out
    kept = orjson.loads(out)
    assert kept["contents"][0]["parts"][2] == {"fileData": {"fileUri": "gs://bucket/x"}}
    assert "audio/wav" in kept["contents"][0]["parts"][1]["inline_data"]["data"]
    assert kept["x-goog-api-key"] == "[redacted]"
    assert kept["contents"][0]["parts"][0]["text"].startswith("use [redacted] or [redacted]")


def test_bodies_that_are_not_json_or_too_large() -> None:
    r = Redactor()
    assert r.body(b"--boundary\r\nbinary") == "[18 bytes, not JSON, not kept]"
    big = r.body(orjson.dumps({"text": "word " * 40_000}))
    assert big is not None and len(big) < MAX_STORED + 100 and big.endswith("characters not kept]")
    events = r.events([b'data: {"candidates": [{"content": {"parts": [{"text": "hi sk-abcdefghijklmnop"}]}}]}'], 10)
    assert "sk-abcdefghijklmnop" not in events and "10 more bytes" in events
