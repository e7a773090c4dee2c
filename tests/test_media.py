"""Media metadata read from bytes: every format, built here from its specification."""

from __future__ import annotations

import io
import struct
import wave
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gemgate.media import audio_seconds, image_size, pdf_pages, video_seconds

# ---------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------


def png(width: int, height: int) -> bytes:
    """A complete, valid grayscale PNG."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = (b"\x00" + b"\x80" * width) * height
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def segment(marker: int, body: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body


def jpeg(width: int, height: int, sof: int = 0xC0, exif: bool = True) -> bytes:
    """JPEG markers up to the frame header: SOI, APP0, (APP1), DQT, DHT, SOFn, EOI."""
    out = b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00")
    if exif:
        out += segment(0xE1, b"Exif\x00\x00" + b"\x00" * 3000)
    out += segment(0xDB, b"\x00" + bytes(range(64)))
    out += segment(0xC4, b"\x00" + b"\x00" * 16)
    out += b"\xff"  # a fill byte before the next marker is legal
    out += segment(sof, struct.pack(">BHHB", 8, height, width, 1) + b"\x01\x11\x00")
    return out + b"\xff\xda" + b"\x00\x08\x01\x01\x00\x00\x3f\x00" + b"\x12\x34" + b"\xff\xd9"


def riff(form: bytes, chunks: bytes) -> bytes:
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + form + chunks


def webp_vp8(width: int, height: int) -> bytes:
    body = b"\x30\x01\x00" + b"\x9d\x01\x2a" + struct.pack("<HH", width, height) + b"\x00" * 10
    return riff(b"WEBP", b"VP8 " + struct.pack("<I", len(body)) + body)


def webp_vp8l(width: int, height: int) -> bytes:
    bits = (width - 1) | ((height - 1) << 14)
    body = b"\x2f" + struct.pack("<I", bits) + b"\x00" * 8
    return riff(b"WEBP", b"VP8L" + struct.pack("<I", len(body)) + body)


def webp_vp8x(width: int, height: int) -> bytes:
    body = (
        b"\x10\x00\x00\x00" + (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    )
    return riff(b"WEBP", b"VP8X" + struct.pack("<I", len(body)) + body)


def bmp(width: int, height: int, core: bool = False) -> bytes:
    if core:
        dib = struct.pack("<IHHHH", 12, width, height, 1, 24)
    else:
        dib = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + len(dib), 0, 0, 14 + len(dib)) + dib


def box(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", 8 + len(body)) + kind + body


def heif(width: int, height: int) -> bytes:
    ispe = box(b"ispe", b"\x00\x00\x00\x00" + struct.pack(">II", width, height))
    thumb = box(b"ispe", b"\x00\x00\x00\x00" + struct.pack(">II", 160, 120))
    meta = box(b"meta", b"\x00\x00\x00\x00" + box(b"iprp", box(b"ipco", thumb + ispe)))
    return box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic") + meta


def wav(seconds: float, rate: int = 16000, channels: int = 1, width: int = 2) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframes(b"\x00" * int(seconds * rate) * channels * width)
    return buf.getvalue()


def id3v2(size: int = 1000, footer: bool = False) -> bytes:
    syncsafe = bytes([(size >> 21) & 0x7F, (size >> 14) & 0x7F, (size >> 7) & 0x7F, size & 0x7F])
    flags = 0x10 if footer else 0
    body = b"TIT2" + b"\x00" * (size - 4)
    tail = b"3DI\x04\x00" + bytes([flags]) + syncsafe if footer else b""
    return b"ID3\x04\x00" + bytes([flags]) + syncsafe + body + tail


MP3_HEADER = b"\xff\xfb\x90\x00"  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz, stereo
MP3_FRAME_LEN = 144 * 128000 // 44100  # 417 bytes


def mp3_frames(count: int) -> bytes:
    return (MP3_HEADER + b"\x00" * (MP3_FRAME_LEN - 4)) * count


def mp3_xing(frames: int) -> bytes:
    """First frame holding a Xing header (frame count), then the audio frames."""
    side_info = b"\x00" * 32
    xing = b"Xing" + struct.pack(">II", 1, frames)
    first = MP3_HEADER + side_info + xing
    first += b"\x00" * (MP3_FRAME_LEN - len(first))
    return first + mp3_frames(frames)


def flac(rate: int, samples: int, channels: int = 2, bits: int = 16) -> bytes:
    packed = (rate << 44) | ((channels - 1) << 41) | ((bits - 1) << 36) | samples
    info = struct.pack(">HH", 4096, 4096) + b"\x00" * 6 + struct.pack(">Q", packed) + b"\x00" * 16
    return b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info + b"\xff\xf8" * 50


def ogg_page(
    payload: bytes, granule: int, serial: int = 0x1234, seq: int = 0, flags: int = 0
) -> bytes:
    lacing = b""
    rest = len(payload)
    while rest >= 255:
        lacing += b"\xff"
        rest -= 255
    lacing += bytes([rest])
    header = b"OggS" + struct.pack("<BBqIIIB", 0, flags, granule, serial, seq, 0, len(lacing))
    return header + lacing + payload


def ogg_vorbis(rate: int, seconds: float) -> bytes:
    ident = b"\x01vorbis" + struct.pack("<IBIiiiBB", 0, 2, rate, 0, 128000, 0, 0xB8, 1)
    pages = ogg_page(ident, 0, flags=2)
    pages += ogg_page(b"\x03vorbis" + b"\x00" * 40, 0, seq=1)
    pages += ogg_page(b"\x00" * 600, rate, seq=2)
    pages += ogg_page(b"\x00" * 300, int(rate * seconds), seq=3, flags=4)
    return pages


def ogg_opus(seconds: float, preskip: int = 312) -> bytes:
    head = b"OpusHead" + struct.pack("<BBHIhB", 1, 2, preskip, 44100, 0, 0)
    pages = ogg_page(head, 0, flags=2)
    pages += ogg_page(b"OpusTags" + b"\x00" * 16, 0, seq=1)
    pages += ogg_page(b"\x00" * 400, int(48000 * seconds) + preskip, seq=2, flags=4)
    # Another logical stream ending later must not be taken for this one.
    pages += ogg_page(b"\x00" * 10, 48000 * 100, serial=0x9999, seq=0)
    return pages


def ext80(value: int) -> bytes:
    exponent = value.bit_length() - 1
    return struct.pack(">HQ", 16383 + exponent, value << (63 - exponent))


def aiff(rate: int, frames: int, kind: bytes = b"AIFF") -> bytes:
    comm = struct.pack(">hIh", 2, frames, 16) + ext80(rate)
    if kind == b"AIFC":
        comm += b"NONE\x0enot compressed\x00"
    chunks = box_be(b"COMM", comm) + box_be(b"SSND", b"\x00" * 64)
    return b"FORM" + struct.pack(">I", 4 + len(chunks)) + kind + chunks


def box_be(kind: bytes, body: bytes) -> bytes:
    pad = b"\x00" if len(body) % 2 else b""
    return kind + struct.pack(">I", len(body)) + body + pad


def adts(frames: int, rate_index: int = 4, payload: int = 13) -> bytes:
    length = 7 + payload
    header = bytes(
        [
            0xFF,
            0xF1,
            (1 << 6) | (rate_index << 2),
            (2 << 6) | (length >> 11),
            (length >> 3) & 0xFF,
            ((length & 7) << 5) | 0x1F,
            0xFC,
        ]
    )
    return (header + b"\x00" * payload) * frames


def mp4(timescale: int, duration: int, version: int = 0, moov_last: bool = False) -> bytes:
    if version == 1:
        mvhd_body = b"\x01\x00\x00\x00" + struct.pack(">QQIQ", 0, 0, timescale, duration)
    else:
        mvhd_body = b"\x00\x00\x00\x00" + struct.pack(">IIII", 0, 0, timescale, duration)
    mvhd_body += b"\x00" * 80
    moov = box(b"moov", box(b"mvhd", mvhd_body) + box(b"trak", b"\x00" * 32))
    ftyp = box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")
    mdat = box(b"mdat", b"\x00" * 5000)
    return ftyp + (mdat + moov if moov_last else moov + mdat)


def fragmented_mp4(timescale: int, duration: int) -> bytes:
    mvhd = box(b"mvhd", b"\x00\x00\x00\x00" + struct.pack(">IIII", 0, 0, timescale, 0) + bytes(80))
    mehd = box(b"mehd", b"\x00\x00\x00\x00" + struct.pack(">I", duration))
    moov = box(b"moov", mvhd + box(b"mvex", mehd))
    return box(b"ftyp", b"iso6\x00\x00\x00\x00iso6dash") + moov + box(b"moof", bytes(16))


def ebml(ident: int, body: bytes) -> bytes:
    id_bytes = ident.to_bytes((ident.bit_length() + 7) // 8, "big")
    return id_bytes + b"\x01" + len(body).to_bytes(7, "big") + body


def webm(seconds: float, scale: int = 1_000_000, float32: bool = False) -> bytes:
    header = ebml(0x1A45DFA3, ebml(0x4282, b"webm"))
    duration = seconds * 1e9 / scale
    raw = struct.pack(">f", duration) if float32 else struct.pack(">d", duration)
    info = ebml(0x1549A966, ebml(0x2AD7B1, scale.to_bytes(3, "big")) + ebml(0x4489, raw))
    tracks = ebml(0x1654AE6B, b"\x00" * 20)
    return header + ebml(0x18538067, info + tracks)


def pdf(page_count: int, compact: bool = False) -> bytes:
    sep = "" if compact else " "
    kids = " ".join(f"{3 + i} 0 R" for i in range(page_count))
    objects = [
        "1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
        f"2 0 obj\n<< /Type{sep}/Pages /Kids [{kids}] /Count {page_count} >>\nendobj\n",
    ]
    for i in range(page_count):
        objects.append(
            f"{3 + i} 0 obj\n<< /Type{sep}/Page /Parent 2 0 R /MediaBox [0 0 612 792] >>\nendobj\n"
        )
    body = "%PDF-1.4\n" + "".join(objects)
    return (body + "trailer\n<< /Root 1 0 R >>\n%%EOF\n").encode()


def pdf_with_object_stream(page_count: int) -> bytes:
    pages = "".join("<< /Type /Page /Parent 2 0 R >>\n" for _ in range(page_count))
    stream = zlib.compress(pages.encode())
    return (
        b"%PDF-1.5\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"5 0 obj\n<< /Type /ObjStm /N 2 /First 10 /Filter /FlateDecode /Length "
        + str(len(stream)).encode()
        + b" >>\nstream\n"
        + stream
        + b"\nendstream\nendobj\n%%EOF\n"
    )


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png(300, 300), (300, 300)),
        (png(1000, 800), (1000, 800)),
        (jpeg(640, 480), (640, 480)),
        (jpeg(4032, 3024, sof=0xC2), (4032, 3024)),  # progressive
        (jpeg(17, 9, exif=False), (17, 9)),
        (b"GIF89a" + struct.pack("<HH", 320, 200) + b"\xf7\x00\x00", (320, 200)),
        (b"GIF87a" + struct.pack("<HH", 1, 1) + b"\x00\x00\x00", (1, 1)),
        (webp_vp8(550, 368), (550, 368)),
        (webp_vp8l(1024, 772), (1024, 772)),
        (webp_vp8x(16383, 9000), (16383, 9000)),
        (bmp(800, -600), (800, 600)),  # top-down rows
        (bmp(127, 64, core=True), (127, 64)),
        (heif(4032, 3024), (4032, 3024)),
    ],
)
def test_image_size(data: bytes, size: tuple[int, int]) -> None:
    assert image_size(data) == size


def test_image_size_unknown() -> None:
    assert image_size(b"") is None
    assert image_size(b"not an image at all") is None
    assert image_size(png(10, 10)[:20]) is None  # truncated inside IHDR
    assert image_size(b"\xff\xd8\xff\xe0\x00\x10JFIF") is None  # no SOF
    assert image_size(riff(b"WEBP", b"VP8 \x00\x00\x00\x00")) is None


# ---------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------


def test_wav() -> None:
    assert audio_seconds(wav(2.0), "audio/wav") == pytest.approx(2.0)
    assert audio_seconds(wav(1.5, rate=44100, channels=2), "audio/x-wav") == pytest.approx(1.5)
    assert audio_seconds(wav(0.25, rate=8000, width=1), "audio/wav") == pytest.approx(0.25)


def test_wav_streamed_with_unset_data_size() -> None:
    data = bytearray(wav(3.0))
    at = data.find(b"data")
    data[at + 4 : at + 8] = b"\xff\xff\xff\xff"
    assert audio_seconds(bytes(data), "audio/wav") == pytest.approx(3.0)


def test_mp3_constant_bitrate_estimate() -> None:
    frames = 200
    expected = frames * 1152 / 44100
    assert audio_seconds(mp3_frames(frames), "audio/mpeg") == pytest.approx(expected, rel=0.01)


def test_mp3_after_id3v2_tag_and_with_id3v1() -> None:
    frames = 100
    data = id3v2(2000) + mp3_frames(frames) + b"TAG" + b"\x00" * 125
    assert audio_seconds(data, "audio/mp3") == pytest.approx(frames * 1152 / 44100, rel=0.01)
    data = id3v2(500, footer=True) + mp3_frames(frames)
    assert audio_seconds(data, "audio/mp3") == pytest.approx(frames * 1152 / 44100, rel=0.01)


def test_mp3_xing_frame_count() -> None:
    assert audio_seconds(mp3_xing(345), "audio/mpeg") == pytest.approx(345 * 1152 / 44100)


def test_mp3_skips_false_sync() -> None:
    data = b"\xff\xfb\x00junk" + mp3_frames(50)
    assert audio_seconds(data, "audio/mpeg") == pytest.approx(50 * 1152 / 44100, rel=0.02)


def test_flac() -> None:
    assert audio_seconds(flac(44100, 44100 * 7), "audio/flac") == pytest.approx(7.0)
    assert audio_seconds(id3v2(100) + flac(48000, 24000), "audio/flac") == pytest.approx(0.5)


def test_ogg_vorbis_and_opus() -> None:
    assert audio_seconds(ogg_vorbis(44100, 3.0), "audio/ogg") == pytest.approx(3.0)
    assert audio_seconds(ogg_opus(2.0), "audio/ogg") == pytest.approx(2.0)


def test_aiff() -> None:
    assert audio_seconds(aiff(44100, 44100 * 4), "audio/aiff") == pytest.approx(4.0)
    assert audio_seconds(aiff(22050, 11025, kind=b"AIFC"), "audio/aiff") == pytest.approx(0.5)


def test_aac_adts() -> None:
    frames = 431
    assert audio_seconds(adts(frames), "audio/aac") == pytest.approx(frames * 1024 / 44100)
    frames = 30_000  # long enough to be extrapolated from its first frames
    assert audio_seconds(adts(frames), "audio/aac") == pytest.approx(frames * 1024 / 44100)


def test_audio_in_mp4_and_webm_containers() -> None:
    assert audio_seconds(mp4(44100, 44100 * 9), "audio/mp4") == pytest.approx(9.0)
    assert audio_seconds(webm(1.25), "audio/webm") == pytest.approx(1.25)


def test_raw_pcm_needs_its_mime_parameters() -> None:
    assert audio_seconds(b"\x00" * 48000, "audio/pcm;rate=24000") == pytest.approx(1.0)
    assert audio_seconds(b"\x00" * 64000, "audio/L16; rate=16000; channels=2") == pytest.approx(1.0)
    assert audio_seconds(b"\x00" * 32000, "audio/pcm") == pytest.approx(1.0)  # 16 kHz default
    assert audio_seconds(b"\x00" * 32000, "audio/unknown") is None


def test_audio_unknown() -> None:
    assert audio_seconds(b"", "audio/wav") is None
    assert audio_seconds(b"RIFF\x00\x00\x00\x00WAVE", "audio/wav") is None
    assert audio_seconds(b"hello there", "audio/mpeg") is None
    assert audio_seconds(b"fLaC\x00", "audio/flac") is None


# ---------------------------------------------------------------------------------------
# Video
# ---------------------------------------------------------------------------------------


def test_mp4_mvhd_versions() -> None:
    assert video_seconds(mp4(1000, 10_500)) == pytest.approx(10.5)
    assert video_seconds(mp4(90000, 90000 * 3600 * 3, version=1)) == pytest.approx(3 * 3600)
    assert video_seconds(mp4(600, 1200, moov_last=True)) == pytest.approx(2.0)


def test_mp4_64_bit_box_size() -> None:
    big_mdat = struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 16 + 100) + b"\x00" * 100
    data = box(b"ftyp", b"qt  \x00\x00\x00\x00qt  ") + big_mdat + mp4(30, 90)[28:]
    assert video_seconds(data) == pytest.approx(3.0)


def test_fragmented_mp4_uses_mehd() -> None:
    assert video_seconds(fragmented_mp4(1000, 4000)) == pytest.approx(4.0)


def test_webm() -> None:
    assert video_seconds(webm(12.5)) == pytest.approx(12.5)
    assert video_seconds(webm(3.0, float32=True)) == pytest.approx(3.0)


def test_video_unknown() -> None:
    assert video_seconds(b"") is None
    assert video_seconds(b"\x00\x00\x00\x08ftyp") is None
    assert video_seconds(box(b"ftyp", b"isom") + box(b"mdat", b"\x00" * 10)) is None
    assert video_seconds(mp4(0, 100)) is None  # zero timescale


# ---------------------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------------------


def test_pdf_pages() -> None:
    assert pdf_pages(pdf(2)) == 2
    assert pdf_pages(pdf(7, compact=True)) == 7
    assert pdf_pages(pdf(1)) == 1


def test_pdf_incremental_update_counts_a_rewritten_page_once() -> None:
    update = b"4 0 obj\n<< /Type /Page /Parent 2 0 R /Rotate 90 >>\nendobj\n%%EOF\n"
    assert pdf_pages(pdf(3) + update) == 3


def test_pdf_pages_in_object_streams() -> None:
    assert pdf_pages(pdf_with_object_stream(5)) == 5


def test_pdf_page_tree_count_as_last_resort() -> None:
    data = b"%PDF-1.7\n2 0 obj\n<< /Type /Pages /Count 12 /Kids [] >>\nendobj\n"
    assert pdf_pages(data) == 12


def test_pdf_garbage_is_one_page() -> None:
    assert pdf_pages(b"") == 1
    assert pdf_pages(b"\x00\xff" * 100) == 1
    bomb = b"5 0 obj\n<< /Type /ObjStm >>\nstream\n" + zlib.compress(b"\x00" * (64 << 20))
    assert pdf_pages(bomb) == 1


# ---------------------------------------------------------------------------------------
# Never raise
# ---------------------------------------------------------------------------------------

SAMPLES = [
    png(300, 200),
    jpeg(64, 48),
    webp_vp8(10, 10),
    webp_vp8l(10, 10),
    webp_vp8x(10, 10),
    bmp(10, 10),
    heif(10, 10),
    wav(0.1),
    mp3_xing(5),
    id3v2(50) + mp3_frames(3),
    flac(8000, 800),
    ogg_vorbis(8000, 0.5),
    ogg_opus(0.5),
    aiff(8000, 800),
    adts(3),
    mp4(1000, 1000),
    fragmented_mp4(10, 10),
    webm(1.0),
    pdf(2),
    pdf_with_object_stream(2),
]


def _check_total(data: bytes) -> None:
    size = image_size(data)
    assert size is None or (size[0] > 0 and size[1] > 0)
    for mime in ("audio/wav", "audio/pcm;rate=8000", ""):
        seconds = audio_seconds(data, mime)
        assert seconds is None or seconds > 0
    seconds = video_seconds(data)
    assert seconds is None or seconds > 0
    assert pdf_pages(data) >= 1


@given(st.binary(max_size=2048))
@settings(max_examples=300, deadline=None)
def test_garbage_never_raises(data: bytes) -> None:
    _check_total(data)


@given(
    st.sampled_from(SAMPLES),
    st.integers(min_value=0, max_value=4096),
    st.integers(min_value=0, max_value=255),
    st.integers(min_value=0, max_value=4096),
)
@settings(max_examples=400, deadline=None)
def test_damaged_files_never_raise(sample: bytes, cut: int, value: int, at: int) -> None:
    damaged = bytearray(sample)
    if damaged:
        damaged[at % len(damaged)] = value
    _check_total(bytes(damaged))
    _check_total(sample[:cut])


def test_memoryview_and_bytearray_inputs() -> None:
    data = png(40, 30)
    assert image_size(bytearray(data)) == (40, 30)
    assert image_size(memoryview(data)) == (40, 30)  # type: ignore[arg-type]
