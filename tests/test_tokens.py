"""Local token counting with the real Gemma 3 vocabulary (the bundled GGUF), no mocks."""

from __future__ import annotations

import asyncio
import base64
import io
import math
import struct
import threading
import time
import wave
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gemgate.tokens import (
    MODALITIES,
    TokenCount,
    TokenCounter,
    can_count_inline,
    decode_base64,
    default_gguf_path,
    image_tokens,
)

# ---------------------------------------------------------------------------------------
# Fixtures and media builders
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gguf() -> Path:
    return default_gguf_path()


@pytest.fixture(scope="module")
def counter(gguf: Path) -> Iterator[TokenCounter]:
    tc = TokenCounter(gguf)
    yield tc
    tc.close()


@pytest.fixture(scope="module")
def llama(gguf: Path) -> Any:
    """llama.cpp's own tokenizer on the same vocabulary, as the reference."""
    import llama_cpp

    return llama_cpp.Llama(model_path=str(gguf), vocab_only=True, verbose=False)


def reference_count(llama: Any, text: str) -> int:
    return len(llama.tokenize(text.encode(), add_bos=False, special=False))


def png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = (b"\x00" + b"\x00" * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def jpeg(width: int, height: int, metadata_segments: int = 0) -> bytes:
    def seg(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    return (
        b"\xff\xd8"
        + seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + seg(0xE2, b"ICC_PROFILE\x00" + bytes(60_000)) * metadata_segments
        + seg(0xDB, b"\x00" + bytes(64))
        + seg(0xC0, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
        + b"\xff\xd9"
    )


def wav(seconds: float, rate: int = 16000) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buf.getvalue()


def pdf(pages: int) -> bytes:
    kids = " ".join(f"{3 + i} 0 R" for i in range(pages))
    out = "%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
    out += f"2 0 obj\n<< /Type /Pages /Kids [{kids}] /Count {pages} >>\nendobj\n"
    for i in range(pages):
        out += f"{3 + i} 0 obj\n<< /Type /Page /Parent 2 0 R >>\nendobj\n"
    return (out + "trailer\n<< /Root 1 0 R >>\n%%EOF\n").encode()


def mp4(seconds: int) -> bytes:
    def box(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", 8 + len(body)) + kind + body

    mvhd = box(b"mvhd", b"\x00" * 4 + struct.pack(">IIII", 0, 0, 1000, seconds * 1000) + bytes(80))
    return box(b"ftyp", b"isom\x00\x00\x02\x00isom") + box(b"moov", mvhd) + box(b"mdat", bytes(64))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def inline(mime: str, data: bytes | str) -> dict[str, Any]:
    encoded = data if isinstance(data, str) else b64(data)
    return {"inlineData": {"mimeType": mime, "data": encoded}}


def user(*parts: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "parts": list(parts)}


# ---------------------------------------------------------------------------------------
# Text
# ---------------------------------------------------------------------------------------


def test_hello_world_matches_llama(counter: TokenCounter, llama: Any) -> None:
    n = counter.count_text("Hello world")
    assert 0 < n <= 4
    assert n == reference_count(llama, "Hello world")


def test_empty_text_is_zero(counter: TokenCounter) -> None:
    assert counter.count_text("") == 0


def test_no_bos_and_special_tokens_are_plain_text(counter: TokenCounter, llama: Any) -> None:
    assert counter.count_text("Hi") == len(llama.tokenize(b"Hi", add_bos=True)) - 1
    special = "<start_of_turn>user"
    assert counter.count_text(special) == reference_count(llama, special)
    parsed = len(llama.tokenize(special.encode(), add_bos=False, special=True))
    assert counter.count_text(special) > parsed


@pytest.mark.parametrize(
    "text",
    [
        "naïve café — 日本語のテキスト 😀 " * 40,
        "",
        " leading and trailing spaces   ",
        "\n\n\nnewlines\n\n",
    ],
)
def test_unicode_and_whitespace_match_llama(counter: TokenCounter, llama: Any, text: str) -> None:
    assert counter.count_text(text) == reference_count(llama, text)


def long_mixed_text() -> str:
    prose = (
        "Gemini counts tokens with the Gemma vocabulary. Each   part is counted on its own;\n"
        "images, audio and video follow fixed rules.\n\n"
    )
    code = 'def f(x):\n\treturn {"a": [1, 2, 3], "b": x > 2}  # comment\n'
    html = "<div> <p>Hello</p> </div>\n<span> x </span> > <a href='#'>link</a>\n"
    other = "日本語 テキスト, naïve café, emoji 😀😀, tabs\t\tand  double  spaces.\r\n"
    return (prose + code + html + other) * 100


def test_long_text_is_counted_exactly_in_chunks(counter: TokenCounter, llama: Any) -> None:
    text = long_mixed_text()
    assert len(text.encode()) > 20_000  # well past the chunking threshold
    assert counter.count_text(text) == reference_count(llama, text)


def test_pathological_long_text_stays_fast(counter: TokenCounter) -> None:
    # One llama.cpp call on this takes tens of seconds; in chunks it takes well under one.
    text = "x\ty\n" * 30_000
    started = time.perf_counter()
    assert counter.count_text(text) == 120_000
    assert time.perf_counter() - started < 5.0


# ---------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------


def test_request_turns_and_system_instruction(counter: TokenCounter) -> None:
    one = {"contents": [user({"text": "What is the capital of France?"})]}
    full = {
        "systemInstruction": {"parts": [{"text": "You are a terse geography tutor."}]},
        "contents": [
            user({"text": "What is the capital of France?"}),
            {"role": "model", "parts": [{"text": "Paris."}]},
            user({"text": "And of Italy?"}),
        ],
    }
    small, big = counter.count_request(one), counter.count_request(full)
    assert isinstance(small, TokenCount)
    assert 0 < small.total < big.total
    expected = sum(
        counter.count_text(t)
        for t in (
            "You are a terse geography tutor.",
            "What is the capital of France?",
            "Paris.",
            "And of Italy?",
        )
    )
    assert big.total == big.by_modality["TEXT"] == expected
    assert set(big.by_modality) == set(MODALITIES)
    assert big.details() == [{"modality": "TEXT", "tokenCount": expected}]


def test_function_calls_responses_and_declarations_count_their_json(counter: TokenCounter) -> None:
    call = {"name": "get_weather", "args": {"city": "Paris", "unit": "C"}}
    response = {"name": "get_weather", "response": {"temperature": 21, "sky": "clear"}}
    decls = [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
        }
    ]
    request = {
        "contents": [
            {"role": "model", "parts": [{"functionCall": call}]},
            {"role": "user", "parts": [{"functionResponse": response}]},
        ],
        "tools": [{"functionDeclarations": decls}, {"googleSearch": {}}],
    }
    expected = sum(counter.count_text(orjson.dumps(v).decode()) for v in (call, response, decls))
    assert counter.count_request(request).by_modality["TEXT"] == expected


def test_images_by_size(counter: TokenCounter) -> None:
    small = counter.count_request({"contents": [user(inline("image/png", png(300, 300)))]})
    assert small.total == small.by_modality["IMAGE"] == 258
    large = counter.count_request({"contents": [user(inline("image/png", png(1000, 800)))]})
    assert large.by_modality["IMAGE"] == 2 * 2 * 258 == 1032
    photo = counter.count_request({"contents": [user(inline("image/jpeg", jpeg(1000, 800)))]})
    assert photo.by_modality["IMAGE"] == 1032
    # Frame header past the first 48 kB: found by decoding the whole image.
    heavy = jpeg(4000, 3000, metadata_segments=3)
    counted = counter.count_request({"contents": [user(inline("image/jpeg", heavy))]})
    assert counted.by_modality["IMAGE"] == 6 * 4 * 258
    assert image_tokens(384, 384) == 258
    assert image_tokens(385, 10) == 258  # one tile
    assert image_tokens(1536, 1537) == 2 * 3 * 258


def test_text_and_image_together(counter: TokenCounter) -> None:
    request = {
        "contents": [user({"text": "Describe this picture."}, inline("image/jpeg", jpeg(300, 300)))]
    }
    counted = counter.count_request(request)
    assert counted.by_modality["IMAGE"] == 258
    assert counted.by_modality["TEXT"] == counter.count_text("Describe this picture.")
    assert counted.total == 258 + counted.by_modality["TEXT"]
    assert [d["modality"] for d in counted.details()] == ["TEXT", "IMAGE"]


def test_audio_two_seconds_is_64_tokens(counter: TokenCounter) -> None:
    counted = counter.count_request({"contents": [user(inline("audio/wav", wav(2.0)))]})
    assert counted.by_modality["AUDIO"] == 64
    assert counted.total == 64


def test_audio_of_unknown_length_is_estimated_from_size(counter: TokenCounter) -> None:
    data = bytes(range(256)) * 125  # 32,000 bytes, no known header: 2 s at 16 kB/s
    counted = counter.count_request({"contents": [user(inline("audio/mpeg", data))]})
    assert counted.by_modality["AUDIO"] == 64
    assert counted.notes


def test_pdf_two_pages_is_516_tokens(counter: TokenCounter) -> None:
    counted = counter.count_request({"contents": [user(inline("application/pdf", pdf(2)))]})
    assert counted.by_modality["DOCUMENT"] == 516
    assert counted.total == 516


def test_video_by_duration_and_clip(counter: TokenCounter) -> None:
    counted = counter.count_request({"contents": [user(inline("video/mp4", mp4(10)))]})
    assert counted.by_modality["VIDEO"] == 2630
    clip = inline("video/mp4", mp4(10)) | {
        "videoMetadata": {"startOffset": "2s", "endOffset": "6s"}
    }
    assert counter.count_request({"contents": [user(clip)]}).by_modality["VIDEO"] == 4 * 263


def test_video_of_unknown_length_is_estimated_per_megabyte(counter: TokenCounter) -> None:
    data = b"\x00" * 2_000_000
    counted = counter.count_request({"contents": [user(inline("video/mp4", data))]})
    assert counted.by_modality["VIDEO"] == 2 * 263
    assert counted.notes


def test_text_inline_data_counts_as_text(counter: TokenCounter) -> None:
    body = "name,city\nAda,London\nGrace,Arlington\n"
    counted = counter.count_request({"contents": [user(inline("text/csv", body.encode()))]})
    assert counted.by_modality["TEXT"] == counter.count_text(body)


def test_file_data_is_flat_and_noted(counter: TokenCounter) -> None:
    part = {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://bucket/clip.mp4"}}
    counted = counter.count_request({"contents": [user(part)]})
    assert counted.by_modality["VIDEO"] == 258
    assert counted.total == 258
    assert any("gs://bucket/clip.mp4" in note for note in counted.notes)


def test_url_safe_unpadded_base64(counter: TokenCounter) -> None:
    data = png(1000, 800) + b"\xfb\xff\xfe"  # trailing bytes give '-' and '_'
    if len(data) % 3 == 0:
        data += b"\xff"  # and an unpadded tail
    standard = base64.b64encode(data).decode()
    url_safe = base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert ("-" in url_safe or "_" in url_safe) and len(url_safe) % 4
    assert decode_base64(url_safe) == data
    assert decode_base64(standard) == data
    assert decode_base64(standard[:40] + "\n" + standard[40:]) == data
    counted = counter.count_request({"contents": [user(inline("image/png", url_safe))]})
    assert counted.by_modality["IMAGE"] == 1032


def test_garbage_media_does_not_raise(counter: TokenCounter) -> None:
    parts = [
        inline("image/png", b"not a png"),
        inline("image/jpeg", "%%% not base64 %%%"),
        inline("audio/wav", b"RIFF\x00\x00"),
        inline("video/mp4", b"\x00\x00\x00\x01ftyp"),
        inline("application/pdf", b"%PDF-garbage"),
        inline("application/octet-stream", b"\x00\x01\x02"),
        inline("", b""),
        {"inlineData": {"mimeType": "image/png"}},
        {"inlineData": {"mimeType": "image/png", "data": 12}},
        {"fileData": {}},
        {"functionCall": {"name": "f", "args": {1: 2}}},
        "not a part",
        {"text": None},
    ]
    counted = counter.count_request({"contents": [user(*parts), "junk", {"parts": "junk"}]})
    assert counted.by_modality["IMAGE"] == 2 * 258
    assert counted.by_modality["DOCUMENT"] >= 258  # the PDF counts as one page
    assert counted.total == sum(counted.by_modality.values())
    assert counter.count_request({}).total == 0
    assert counter.count_request({"contents": "junk", "tools": "junk"}).total == 0


def test_untyped_inline_data_is_sniffed(counter: TokenCounter) -> None:
    counted = counter.count_request({"contents": [user(inline("", png(1000, 800)))]})
    assert counted.by_modality["IMAGE"] == 1032
    counted = counter.count_request(
        {"contents": [user(inline("application/octet-stream", pdf(3)))]}
    )
    assert counted.by_modality["DOCUMENT"] == 3 * 258


def test_snake_case_and_count_tokens_wrapper(counter: TokenCounter) -> None:
    inner = {
        "system_instruction": {"parts": [{"text": "Be brief."}]},
        "contents": [
            {"parts": [{"inline_data": {"mime_type": "audio/wav", "data": b64(wav(1.0))}}]}
        ],
    }
    counted = counter.count_request({"generateContentRequest": inner})
    assert counted.by_modality["AUDIO"] == 32
    assert counted.by_modality["TEXT"] == counter.count_text("Be brief.")


def test_async_and_threads_agree(counter: TokenCounter) -> None:
    request = {"contents": [user({"text": long_mixed_text()}, inline("image/png", png(1000, 800)))]}
    expected = counter.count_request(request)

    async def many() -> list[TokenCount]:
        return await asyncio.gather(*(counter.count_request_async(request) for _ in range(8)))

    assert all(c == expected for c in asyncio.run(many()))

    results: list[int] = []

    def work() -> None:
        results.append(counter.count_text(long_mixed_text()))

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 6


def test_can_count_inline() -> None:
    assert can_count_inline({"contents": [user({"text": "hi"})]})
    assert not can_count_inline({"contents": [user({"text": "x" * 2_000})]})
    assert not can_count_inline({"contents": [user(inline("image/png", png(2, 2)))]})
    big_tools = {"tools": [{"functionDeclarations": [{"name": "f", "description": "d" * 3000}]}]}
    assert not can_count_inline(big_tools)


def test_media_rules_round_up() -> None:
    from gemgate.tokens import audio_tokens, video_tokens

    assert audio_tokens(2.0) == 64
    assert audio_tokens(0.01) == 1
    assert video_tokens(1.5) == math.ceil(1.5 * 263)
    assert video_tokens(0) == 0



@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.text(max_size=300), min_size=1, max_size=4))
def test_bound_is_never_below_the_exact_count(counter: TokenCounter, texts: list[str]) -> None:
    request = {"contents": [{"role": "user", "parts": [{"text": t}]} for t in texts]}
    assert counter.bound_request(request).total >= counter.count_request(request).total


def test_bound_counts_media_like_the_exact_count(counter: TokenCounter) -> None:
    request = {"contents": [user(inline("image/png", png(1000, 800)))]}
    exact = counter.count_request(request)
    bound = counter.bound_request(request)
    assert bound.by_modality["IMAGE"] == exact.by_modality["IMAGE"] == 1032


def test_bound_of_inline_text_is_its_size_not_its_tokens(counter: TokenCounter) -> None:
    # 1 MB of text/plain: bounded by its bytes (one token per byte holds for any
    # tokenizer), never decoded and tokenized on the admission path.
    raw = ("the quick brown fox jumps over the lazy dog\n" * 24_000).encode()
    request = {"contents": [user(inline("text/plain", raw))]}
    bound = counter.bound_request(request)
    assert bound.by_modality["TEXT"] >= len(raw)
    assert bound.total >= counter.count_request(request).total


def test_reference_bound_is_the_input_limit_for_files_and_caches() -> None:
    from gemgate.tokens import reference_bound

    file_part = {"fileData": {"mimeType": "video/mp4", "fileUri": "files/abc"}}
    assert reference_bound({"contents": [user(file_part)]}, 1_048_576) == 1_048_576
    assert reference_bound({"contents": [user({"text": "hi"})], "cachedContent": "cachedContents/c"}, 99) == 99
    wrapped = {"generateContentRequest": {"contents": [user(file_part)]}}
    assert reference_bound(wrapped, 7) == 7
    assert reference_bound({"contents": [user({"text": "hi"})]}, 1_048_576) == 0
