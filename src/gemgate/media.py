"""Media metadata read straight from bytes: image size, audio and video length, PDF pages.

Token accounting needs only a few numbers from each media part (pixels, seconds, pages), and
those numbers sit in the first (or last) few bytes of every common container. This module
reads them with the standard library alone: no decoder, no third-party package, no files.

Every public function is total: garbage, truncated or hostile input yields ``None`` (or one
page for :func:`pdf_pages`), never an exception. Formats are recognised by their magic bytes,
not by the declared MIME type, because clients often send a wrong or generic one.

    image_size     PNG, JPEG (SOF markers), GIF, WebP (VP8, VP8L, VP8X), BMP, HEIF/AVIF (ispe)
    audio_seconds  WAV/RF64, MP3 (Xing/VBRI or first frame's bitrate; ID3v2 skipped), FLAC,
                   Ogg (Vorbis, Opus, FLAC), AIFF/AIFC, AAC (ADTS), MP4/M4A, WebM/Matroska,
                   raw PCM given ``audio/pcm;rate=N`` or ``audio/L16;rate=N``
    video_seconds  MP4/MOV/3GP (mvhd, version 0 and 1; mehd for fragmented files),
                   WebM/Matroska (Segment Info Duration)
    pdf_pages      count of ``/Type /Page`` objects (object streams inflated when needed)
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator

__all__ = ["audio_seconds", "image_size", "pdf_pages", "video_seconds"]

# How far to look for things that are near the start of a file.
_SCAN_LIMIT = 1 << 20
# Budget for inflating PDF object streams (guards against decompression bombs).
_PDF_INFLATE_BUDGET = 32 << 20


def _u16be(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 2], "big")


def _u32be(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 4], "big")


def _u64be(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 8], "big")


def _u16le(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 2], "little")


def _u32le(data: bytes, off: int) -> int:
    return int.from_bytes(data[off : off + 4], "little")


def _valid_size(width: int, height: int) -> tuple[int, int] | None:
    if width <= 0 or height <= 0:
        return None
    return width, height


def _valid_seconds(seconds: float) -> float | None:
    if seconds != seconds or seconds <= 0 or seconds == float("inf"):  # NaN, <= 0, inf
        return None
    return seconds


# ---------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------


def image_size(data: bytes) -> tuple[int, int] | None:
    """Return ``(width, height)`` in pixels, or ``None`` when the format or size is unknown."""
    try:
        return _image_size(bytes(data))
    except Exception:
        return None


def _image_size(data: bytes) -> tuple[int, int] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png_size(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_size(data)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return _valid_size(_u16le(data, 6), _u16le(data, 8))
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data.startswith(b"BM"):
        return _bmp_size(data)
    if data[4:8] == b"ftyp":
        return _heif_size(data)
    return None


def _png_size(data: bytes) -> tuple[int, int] | None:
    # Signature (8), then the IHDR chunk: length (4), "IHDR", width (4), height (4).
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return _valid_size(_u32be(data, 16), _u32be(data, 20))


# Start-of-frame markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) do not.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, without a length field.
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos, end = 2, len(data)
    while pos < end:
        if data[pos] != 0xFF:
            # Not at a marker: entropy-coded data or junk; find the next marker.
            nxt = data.find(b"\xff", pos)
            if nxt < 0:
                return None
            pos = nxt
            continue
        while pos < end and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= end:
            return None
        marker = data[pos]
        pos += 1
        if marker == 0x00 or marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9:  # end of image
            return None
        if pos + 2 > end:
            return None
        seg_len = _u16be(data, pos)
        if seg_len < 2:
            return None
        if marker in _JPEG_SOF:
            # length (2), precision (1), height (2), width (2)
            if pos + 7 > end:
                return None
            return _valid_size(_u16be(data, pos + 5), _u16be(data, pos + 3))
        pos += seg_len
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        # Frame tag (3), start code 9d 01 2a, then 14-bit width and height.
        if len(data) < 30 or data[23:26] != b"\x9d\x01\x2a":
            return None
        return _valid_size(_u16le(data, 26) & 0x3FFF, _u16le(data, 28) & 0x3FFF)
    if chunk == b"VP8L":
        # Signature 0x2f, then width-1 and height-1 as 14-bit fields.
        if len(data) < 25 or data[20] != 0x2F:
            return None
        bits = _u32le(data, 21)
        return _valid_size((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        # Flags (1), reserved (3), canvas width-1 (24 bits), canvas height-1 (24 bits).
        if len(data) < 30:
            return None
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return _valid_size(width, height)
    return None


def _bmp_size(data: bytes) -> tuple[int, int] | None:
    if len(data) < 26:
        return None
    header_size = _u32le(data, 14)
    if header_size == 12:  # BITMAPCOREHEADER: unsigned 16-bit fields
        return _valid_size(_u16le(data, 18), _u16le(data, 20))
    if header_size < 40:
        return None
    width, height = struct.unpack_from("<ii", data, 18)
    return _valid_size(abs(width), abs(height))  # negative height means top-down rows


def _heif_size(data: bytes) -> tuple[int, int] | None:
    # HEIC/HEIF/AVIF: the image spatial extents property ("ispe") inside meta/iprp/ipco.
    head = data[:_SCAN_LIMIT]
    best: tuple[int, int] | None = None
    pos = head.find(b"ispe")
    while pos >= 4:
        # box size (4) "ispe" version/flags (4) width (4) height (4)
        if _u32be(head, pos - 4) >= 20 and pos + 16 <= len(head):
            size = _valid_size(_u32be(head, pos + 8), _u32be(head, pos + 12))
            # Several items may carry one (thumbnails, grid tiles): keep the largest.
            if size and (best is None or size[0] * size[1] > best[0] * best[1]):
                best = size
        pos = head.find(b"ispe", pos + 4)
    return best


# ---------------------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------------------


def audio_seconds(data: bytes, mime: str = "") -> float | None:
    """Return the duration of an audio file in seconds, or ``None`` when unknown.

    The container is recognised by its bytes; ``mime`` is needed only for headerless PCM
    (``audio/pcm;rate=16000``, ``audio/L16;rate=24000;channels=1``: 16-bit samples).
    """
    try:
        return _audio_seconds(bytes(data), mime or "")
    except Exception:
        return None


def _audio_seconds(data: bytes, mime: str) -> float | None:
    if data[:4] in (b"RIFF", b"RF64") and data[8:12] == b"WAVE":
        return _wav_seconds(data)
    if data.startswith(b"fLaC"):
        return _flac_seconds(data)
    if data.startswith(b"OggS"):
        return _ogg_seconds(data)
    if data.startswith(b"FORM") and data[8:12] in (b"AIFF", b"AIFC"):
        return _aiff_seconds(data)
    if data[4:8] == b"ftyp" or data[4:8] in (b"moov", b"mdat", b"wide", b"free"):
        return _mp4_seconds(data)
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return _ebml_seconds(data)
    if data.startswith(b"ID3"):
        start = _id3v2_end(data)
        if data[start : start + 4] == b"fLaC":
            return _flac_seconds(data[start:])
        return _mpeg_audio_seconds(data, start)
    if len(data) >= 2 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0:
        if (data[1] & 0x06) == 0:  # layer bits 00: AAC in ADTS framing
            return _adts_seconds(data)
        return _mpeg_audio_seconds(data, 0)
    return _pcm_seconds(data, mime)


def _wav_seconds(data: bytes) -> float | None:
    byte_rate = 0
    data_size: int | None = None
    ds64_size: int | None = None
    for cid, start, size in _riff_chunks(data, 12):
        if cid == b"ds64" and size >= 16:
            ds64_size = int.from_bytes(data[start + 8 : start + 16], "little")
        elif cid == b"fmt " and size >= 16:
            byte_rate = _u32le(data, start + 8)
            if not byte_rate:  # some writers leave it unset: rate x block align
                byte_rate = _u32le(data, start + 4) * _u16le(data, start + 12)
        elif cid == b"data":
            data_size = size
            if size == 0xFFFFFFFF and ds64_size is not None:
                data_size = ds64_size
            # Streamed WAVs leave the size unset or too large: trust the bytes we have.
            data_size = min(data_size, len(data) - start)
            break
    if not byte_rate or data_size is None:
        return None
    return _valid_seconds(data_size / byte_rate)


def _riff_chunks(data: bytes, pos: int) -> Iterator[tuple[bytes, int, int]]:
    end = len(data)
    while pos + 8 <= end:
        cid = data[pos : pos + 4]
        size = _u32le(data, pos + 4)
        yield cid, pos + 8, size
        pos += 8 + size + (size & 1)  # chunks are word-aligned


def _flac_streaminfo(block: bytes) -> tuple[int, int] | None:
    """(sample rate, total samples) from a 34-byte STREAMINFO body."""
    if len(block) < 18:
        return None
    packed = _u64be(block, 10)  # rate (20 bits) channels (3) bits (5) total samples (36)
    rate = packed >> 44
    total = packed & ((1 << 36) - 1)
    return rate, total


def _flac_seconds(data: bytes) -> float | None:
    # "fLaC", then the first metadata block must be STREAMINFO (type 0).
    if len(data) < 8 + 18 or (data[4] & 0x7F) != 0:
        return None
    info = _flac_streaminfo(data[8:42])
    if info is None or not info[0] or not info[1]:
        return None
    return _valid_seconds(info[1] / info[0])


def _ogg_pages(data: bytes, pos: int = 0) -> Iterator[tuple[int, int, int, int]]:
    """Yield (granule, serial, payload start, payload end) for pages from ``pos``."""
    end = len(data)
    while pos + 27 <= end and data[pos : pos + 4] == b"OggS":
        granule = struct.unpack_from("<q", data, pos + 6)[0]
        serial = _u32le(data, pos + 14)
        nseg = data[pos + 26]
        table = data[pos + 27 : pos + 27 + nseg]
        payload = pos + 27 + nseg
        payload_end = payload + sum(table)
        yield granule, serial, payload, min(payload_end, end)
        pos = payload_end


def _ogg_seconds(data: bytes) -> float | None:
    first = next(_ogg_pages(data), None)
    if first is None:
        return None
    _, serial, p0, p1 = first
    head = data[p0:p1]
    preskip = 0
    if head.startswith(b"\x01vorbis") and len(head) >= 16:
        rate = _u32le(head, 12)
    elif head.startswith(b"OpusHead") and len(head) >= 12:
        rate = 48000  # Opus granule positions always count 48 kHz samples
        preskip = _u16le(head, 10)
    elif head.startswith(b"\x7fFLAC") and head[9:13] == b"fLaC":
        info = _flac_streaminfo(head[17:51])
        rate = info[0] if info else 0
    elif head.startswith(b"Speex   ") and len(head) >= 40:
        rate = _u32le(head, 36)
    else:
        return None
    if not rate:
        return None
    granule = _ogg_last_granule(data, serial)
    if granule is None:
        return None
    return _valid_seconds((granule - preskip) / rate)


def _ogg_last_granule(data: bytes, serial: int) -> int | None:
    pos = len(data)
    floor = max(0, len(data) - (1 << 20))
    while True:
        pos = data.rfind(b"OggS", floor, pos)
        if pos < 0:
            return None
        if pos + 27 <= len(data) and data[pos + 4] == 0 and _u32le(data, pos + 14) == serial:
            granule = int(struct.unpack_from("<q", data, pos + 6)[0])
            if granule > 0:
                return granule
        if pos == 0:
            return None


def _aiff_seconds(data: bytes) -> float | None:
    pos = 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], _u32be(data, pos + 4)
        if cid == b"COMM" and size >= 18:
            frames = _u32be(data, pos + 10)
            rate = _extended_to_float(data[pos + 16 : pos + 26])
            if not rate:
                return None
            return _valid_seconds(frames / rate)
        pos += 8 + size + (size & 1)
    return None


def _extended_to_float(raw: bytes) -> float:
    """IEEE 754 80-bit extended (big-endian), as used by AIFF sample rates."""
    if len(raw) < 10:
        return 0.0
    exponent = _u16be(raw, 0) & 0x7FFF
    mantissa = _u64be(raw, 2)
    if exponent == 0 or exponent == 0x7FFF:
        return 0.0
    return float(mantissa * 2.0 ** (exponent - 16383 - 63))


def _id3v2_end(data: bytes) -> int:
    """Offset just past any ID3v2 tags at the start of ``data`` (0 when there are none)."""
    pos = 0
    while data[pos : pos + 3] == b"ID3" and len(data) >= pos + 10:
        raw = data[pos + 6 : pos + 10]
        size = (raw[0] & 0x7F) << 21 | (raw[1] & 0x7F) << 14 | (raw[2] & 0x7F) << 7 | raw[3] & 0x7F
        footer = 10 if data[pos + 5] & 0x10 else 0
        pos += 10 + size + footer
    return pos


# Bitrates in kbit/s indexed by [table][index]; tables: MPEG-1 layers I, II, III and
# MPEG-2/2.5 layer I, layers II and III.
_MP3_BITRATES = (
    (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
)
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


class _MpegFrame:
    __slots__ = ("bitrate", "length", "mono", "mpeg1", "rate", "samples")

    def __init__(self, bitrate: int, rate: int, samples: int, length: int, mpeg1: bool, mono: bool):
        self.bitrate, self.rate, self.samples = bitrate, rate, samples
        self.length, self.mpeg1, self.mono = length, mpeg1, mono


def _mpeg_frame(data: bytes, pos: int) -> _MpegFrame | None:
    if pos + 4 > len(data) or data[pos] != 0xFF or (data[pos + 1] & 0xE0) != 0xE0:
        return None
    b1, b2, b3 = data[pos + 1], data[pos + 2], data[pos + 3]
    version = (b1 >> 3) & 3  # 0: MPEG-2.5, 2: MPEG-2, 3: MPEG-1
    layer = (b1 >> 1) & 3  # 1: III, 2: II, 3: I
    index, rate_index = b2 >> 4, (b2 >> 2) & 3
    if version == 1 or layer == 0 or index in (0, 15) or rate_index == 3:
        return None
    mpeg1 = version == 3
    # MPEG-1: I -> 0, II -> 1, III -> 2; MPEG-2/2.5: I -> 3, II and III -> 4.
    table = (3 - layer) if mpeg1 else (3 if layer == 3 else 4)
    bitrate = _MP3_BITRATES[table][index] * 1000
    rate = _MP3_RATES[version][rate_index]
    padding = (b2 >> 1) & 1
    if layer == 3:
        samples, length = 384, (12 * bitrate // rate + padding) * 4
    elif layer == 2 or mpeg1:
        samples, length = 1152, 144 * bitrate // rate + padding
    else:
        samples, length = 576, 72 * bitrate // rate + padding
    return _MpegFrame(bitrate, rate, samples, length, mpeg1, (b3 >> 6) == 3)


def _mpeg_audio_seconds(data: bytes, start: int) -> float | None:
    frame, pos = None, start
    limit = min(len(data), start + 64 * 1024)
    while pos < limit:
        pos = data.find(b"\xff", pos, limit)
        if pos < 0:
            return None
        frame = _mpeg_frame(data, pos)
        # Accept a header only if the next frame also starts where it should (or data ends).
        if frame and (pos + frame.length >= len(data) or _mpeg_frame(data, pos + frame.length)):
            break
        frame = None
        pos += 1
    if frame is None:
        return None
    # A VBR header (Xing/Info or VBRI) in the first frame gives the exact frame count.
    side = (32 if not frame.mono else 17) if frame.mpeg1 else (17 if not frame.mono else 9)
    xing = pos + 4 + side
    if data[xing : xing + 4] in (b"Xing", b"Info") and _u32be(data, xing + 4) & 1:
        frames = _u32be(data, xing + 8)
        if frames:
            return _valid_seconds(frames * frame.samples / frame.rate)
    vbri = pos + 36
    if data[vbri : vbri + 4] == b"VBRI":
        frames = _u32be(data, vbri + 14)
        if frames:
            return _valid_seconds(frames * frame.samples / frame.rate)
    # Constant bitrate: the audio bytes over the first frame's bitrate.
    audio_end = len(data) - (128 if data[-128:-125] == b"TAG" else 0)
    return _valid_seconds((audio_end - pos) * 8 / frame.bitrate)


_ADTS_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)


# Frames to walk before extrapolating (about 3.5 minutes at 44.1 kHz).
_ADTS_FRAMES_WALKED = 10_000


def _adts_seconds(data: bytes) -> float | None:
    pos, frames, rate, end = 0, 0, 0, len(data)
    while pos + 7 <= end and data[pos] == 0xFF and (data[pos + 1] & 0xF6) == 0xF0:
        if frames >= _ADTS_FRAMES_WALKED:
            # Long stream: extrapolate from the frames walked so far by byte length.
            return _valid_seconds(frames * 1024 / rate * end / pos)
        rate_index = (data[pos + 2] >> 2) & 0xF
        if rate_index >= len(_ADTS_RATES):
            break
        rate = _ADTS_RATES[rate_index]
        length = ((data[pos + 3] & 3) << 11) | (data[pos + 4] << 3) | (data[pos + 5] >> 5)
        if length < 7:
            break
        blocks = (data[pos + 6] & 3) + 1  # raw data blocks in this frame, 1024 samples each
        frames += blocks
        pos += length
    if not frames or not rate:
        return None
    return _valid_seconds(frames * 1024 / rate)


_PCM_RATE = re.compile(r"(?:^|;)\s*rate\s*=\s*(\d+)", re.IGNORECASE)
_PCM_CHANNELS = re.compile(r"(?:^|;)\s*channels\s*=\s*(\d+)", re.IGNORECASE)


def _pcm_seconds(data: bytes, mime: str) -> float | None:
    base = mime.split(";", 1)[0].strip().lower()
    if base not in ("audio/pcm", "audio/l16", "audio/raw") or not data:
        return None
    rate_match = _PCM_RATE.search(mime)
    rate = int(rate_match.group(1)) if rate_match else 16000
    channels_match = _PCM_CHANNELS.search(mime)
    channels = int(channels_match.group(1)) if channels_match else 1
    if rate <= 0 or channels <= 0:
        return None
    return _valid_seconds(len(data) / (rate * channels * 2))


# ---------------------------------------------------------------------------------------
# Video (and audio in video containers)
# ---------------------------------------------------------------------------------------


def video_seconds(data: bytes) -> float | None:
    """Return the duration of an MP4/MOV (or WebM/Matroska) file in seconds, or ``None``."""
    try:
        data = bytes(data)
        if data.startswith(b"\x1a\x45\xdf\xa3"):
            return _ebml_seconds(data)
        return _mp4_seconds(data)
    except Exception:
        return None


def _boxes(data: bytes, pos: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, body start, body end) for the ISO BMFF boxes in ``data[pos:end]``."""
    while pos + 8 <= end:
        size, kind = _u32be(data, pos), data[pos + 4 : pos + 8]
        header = 8
        if size == 1:
            if pos + 16 > end:
                return
            size, header = _u64be(data, pos + 8), 16
        elif size == 0:
            size = end - pos
        if size < header:
            return
        yield kind, pos + header, min(pos + size, end)
        pos += size


def _find_box(data: bytes, path: tuple[bytes, ...], pos: int, end: int) -> tuple[int, int] | None:
    for kind, start, stop in _boxes(data, pos, end):
        if kind == path[0]:
            if len(path) == 1:
                return start, stop
            found = _find_box(data, path[1:], start, stop)
            if found:
                return found
    return None


def _mp4_seconds(data: bytes) -> float | None:
    mvhd = _find_box(data, (b"moov", b"mvhd"), 0, len(data))
    if mvhd is None:
        return None
    start, stop = mvhd
    version = data[start]
    if version == 1:
        if stop - start < 32:
            return None
        timescale, duration = _u32be(data, start + 20), _u64be(data, start + 24)
        unknown = (1 << 64) - 1
    else:
        if stop - start < 20:
            return None
        timescale, duration = _u32be(data, start + 12), _u32be(data, start + 16)
        unknown = (1 << 32) - 1
    if duration in (0, unknown):
        # Fragmented MP4: the movie extends header holds the whole duration.
        mehd = _find_box(data, (b"moov", b"mvex", b"mehd"), 0, len(data))
        if mehd is None:
            return None
        m0 = mehd[0]
        duration = _u64be(data, m0 + 4) if data[m0] == 1 else _u32be(data, m0 + 4)
    if not timescale:
        return None
    return _valid_seconds(duration / timescale)


def _ebml_vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int] | None:
    """Read an EBML variable-length integer: (value, length) or None."""
    if pos >= len(data):
        return None
    first = data[pos]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or pos + length > len(data):
        return None
    value = first if keep_marker else first & (0xFF >> length)
    for b in data[pos + 1 : pos + length]:
        value = (value << 8) | b
    return value, length


_EBML_SEGMENT, _EBML_INFO = 0x18538067, 0x1549A966
_EBML_TIMESCALE, _EBML_DURATION = 0x2AD7B1, 0x4489


def _ebml_elements(data: bytes, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield (id, body start, body end); unknown sizes extend to ``end``."""
    while pos < end:
        ident = _ebml_vint(data, pos, keep_marker=True)
        if ident is None:
            return
        size = _ebml_vint(data, pos + ident[1], keep_marker=False)
        if size is None:
            return
        start = pos + ident[1] + size[1]
        unknown = size[0] == (1 << (7 * size[1])) - 1
        stop = end if unknown else min(start + size[0], end)
        yield ident[0], start, stop
        pos = stop


def _ebml_seconds(data: bytes) -> float | None:
    end = len(data)
    for ident, start, stop in _ebml_elements(data, 0, end):
        if ident != _EBML_SEGMENT:
            continue
        for child, c0, c1 in _ebml_elements(data, start, stop):
            if child != _EBML_INFO:
                continue
            scale, duration = 1_000_000, None
            for field, f0, f1 in _ebml_elements(data, c0, c1):
                if field == _EBML_TIMESCALE and 0 < f1 - f0 <= 8:
                    scale = int.from_bytes(data[f0:f1], "big")
                elif field == _EBML_DURATION and f1 - f0 in (4, 8):
                    duration = struct.unpack(">f" if f1 - f0 == 4 else ">d", data[f0:f1])[0]
            if duration is None:
                return None
            return _valid_seconds(duration * scale / 1e9)
    return None


# ---------------------------------------------------------------------------------------
# PDF
# ---------------------------------------------------------------------------------------

_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![A-Za-z0-9])")
_PDF_OBJ = re.compile(rb"(\d+)\s+\d+\s+obj\b")
_PDF_OBJSTM = re.compile(rb"/Type\s*/ObjStm\b")
_PDF_STREAM = re.compile(rb"stream\r?\n")
_PDF_COUNT = re.compile(
    rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)|/Count\s+(\d+)[^>]*?/Type\s*/Pages\b"
)


def pdf_pages(data: bytes) -> int:
    """Return the number of pages of a PDF (at least 1, also for garbage input).

    Counts ``/Type /Page`` dictionaries (not ``/Pages``), once per object number so that
    incremental updates do not count a rewritten page twice. Pages hidden in compressed
    object streams (PDF 1.5+) are found by inflating those streams; as a last resort the
    page tree's ``/Count`` is used.
    """
    try:
        return max(1, _pdf_pages(bytes(data)))
    except Exception:
        return 1


def _pdf_pages(data: bytes) -> int:
    pages = _count_page_objects(data)
    if pages:
        return pages
    budget = _PDF_INFLATE_BUDGET
    view = memoryview(data)
    for match in _PDF_OBJSTM.finditer(data):
        stream = _PDF_STREAM.search(data, match.end(), match.end() + 4096)
        if stream is None:
            continue
        stop = data.find(b"endstream", stream.end())
        if stop < 0:
            stop = len(data)
        try:
            body = zlib.decompressobj().decompress(view[stream.end() : stop], budget)
        except zlib.error:
            continue
        budget -= len(body)
        pages += len(_PDF_PAGE.findall(body))
        if budget <= 0:
            break
    if pages:
        return pages
    counts = [int(a or b) for a, b in _PDF_COUNT.findall(data)]
    return max(counts, default=1)


def _count_page_objects(data: bytes) -> int:
    owners: set[int] = set()
    anonymous = 0
    objects = [(m.start(), int(m.group(1))) for m in _PDF_OBJ.finditer(data)]
    index = 0
    for match in _PDF_PAGE.finditer(data):
        at = match.start()
        while index + 1 < len(objects) and objects[index + 1][0] < at:
            index += 1
        if objects and objects[index][0] < at:
            owners.add(objects[index][1])
        else:
            anonymous += 1
    return len(owners) + anonymous
