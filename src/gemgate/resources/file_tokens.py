"""The tokens a stored file costs when a request names it, by Google's media rules.

Measured once, when its upload completes, off the event loop: a file up to
:data:`MEASURE_LIMIT` is read whole and counted like the same bytes sent inline (images by
their size, audio and video by their length, PDFs by their pages, text with the Gemma
vocabulary up to :data:`TEXT_COUNT_LIMIT`); a larger one is estimated from its size by
the same rules' fallbacks. The bound is what admission reserves for: one token per byte
for text (true of any tokenizer), the measured tokens for media.
"""

from __future__ import annotations

import asyncio
import math

from gemgate.resources.content import ContentStore
from gemgate.tokens import (
    AUDIO_BYTES_PER_SECOND_ESTIMATE,
    AUDIO_TOKENS_PER_SECOND,
    DOCUMENT_TOKENS_PER_PAGE,
    IMAGE_TOKENS,
    TURN_OVERHEAD,
    VIDEO_TOKENS_PER_MB_ESTIMATE,
    Reference,
    TokenCounter,
    is_text_mime,
    modality_of_mime,
)

MEASURE_LIMIT = 64 << 20
TEXT_COUNT_LIMIT = 4 << 20
# A PDF too large to read whole: assume pages of this many bytes (a dense text page).
PDF_BYTES_PER_PAGE_ESTIMATE = 2_000


async def _head(store: ContentStore, file_id: str, limit: int) -> bytes:
    out = bytearray()
    async for block in store.read(file_id):
        out += block
        if len(out) >= limit:
            break
    return bytes(out[:limit])


def _estimate(mime: str, size: int) -> int:
    modality = modality_of_mime(mime)
    if modality == "AUDIO":
        return math.ceil(size / AUDIO_BYTES_PER_SECOND_ESTIMATE * AUDIO_TOKENS_PER_SECOND)
    if modality == "VIDEO":
        return math.ceil(size * VIDEO_TOKENS_PER_MB_ESTIMATE / 1_000_000)
    if modality == "IMAGE":
        return IMAGE_TOKENS
    return math.ceil(size / PDF_BYTES_PER_PAGE_ESTIMATE) * DOCUMENT_TOKENS_PER_PAGE


async def measure(
    store: ContentStore, counter: TokenCounter, file_id: str, mime: str, size: int
) -> Reference:
    modality = modality_of_mime(mime)
    if is_text_mime(mime):
        if size <= TEXT_COUNT_LIMIT:
            text = (await _head(store, file_id, size)).decode("utf-8", "replace")
            tokens = await counter.count_text_async(text)
        else:
            tokens = math.ceil(size / 4)
        return Reference("TEXT", tokens, size + TURN_OVERHEAD)
    if size > MEASURE_LIMIT and modality != "IMAGE":
        tokens = _estimate(mime, size)
        return Reference(modality, tokens, tokens)
    data = await _head(store, file_id, min(size, MEASURE_LIMIT))
    part = {"inlineData": {"mimeType": mime, "data": data}}
    counted = await asyncio.to_thread(counter.count_request, {"contents": [{"parts": [part]}]})
    measured = max(counted.by_modality.items(), key=lambda kv: kv[1])
    return Reference(measured[0], counted.total, counted.total)
