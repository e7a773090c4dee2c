"""Token counts of one request, by modality, parsed from Gemini's ``usageMetadata``.

Google's accounting, which this mirrors:

- ``promptTokenCount`` INCLUDES ``cachedContentTokenCount``; ``promptTokensDetails`` splits
  the whole prompt (cached part included) by modality, ``cacheTokensDetails`` the cached part.
- ``candidatesTokenCount`` is the answer WITHOUT thoughts (``thoughtsTokenCount``);
  ``candidatesTokensDetails`` splits it by modality (TEXT, IMAGE, AUDIO).
- ``toolUsePromptTokenCount`` is input produced by tools (search results, code output),
  split by ``toolUsePromptTokensDetails``.
- total = prompt + candidates + toolUsePrompt + thoughts.

Parsing never raises: a missing or malformed field counts as 0, a missing split puts the
whole count on TEXT, and a split that adds up to less than its total puts the remainder on
TEXT, so no reported token goes unbilled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

# proto enum numbers of google.ai.generativelanguage.v1beta.Modality (for int-encoded enums)
_MODALITY_NUMBERS = {0: "TEXT", 1: "TEXT", 2: "IMAGE", 3: "VIDEO", 4: "AUDIO", 5: "DOCUMENT"}
_INPUT_MODALITIES = ("TEXT", "IMAGE", "AUDIO", "VIDEO", "DOCUMENT")


def _count(value: object) -> int:
    """A token count, or 0 for anything that is not a non-negative integer."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    if isinstance(value, float) and value.is_integer():
        return max(int(value), 0)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return 0


def _field(meta: Mapping[str, Any], camel: str, snake: str) -> Any:
    value = meta.get(camel)
    return meta.get(snake) if value is None else value


def _modality(value: object) -> str:
    """Normalise a modality name; anything unknown is treated as TEXT."""
    if isinstance(value, bool):
        return "TEXT"
    if isinstance(value, int):
        return _MODALITY_NUMBERS.get(value, "TEXT")
    if isinstance(value, str):
        name = value.upper()
        return name if name in _INPUT_MODALITIES else "TEXT"
    return "TEXT"


def _split(total_value: object, details: object) -> dict[str, int]:
    """Counts by modality: the details list, with any shortfall against the total on TEXT."""
    split = dict.fromkeys(_INPUT_MODALITIES, 0)
    if isinstance(details, list):
        for item in details:
            if not isinstance(item, Mapping):
                continue
            count = _count(_field(item, "tokenCount", "token_count"))
            if count:
                split[_modality(item.get("modality"))] += count
    shortfall = _count(total_value) - sum(split.values())
    if shortfall > 0:
        split["TEXT"] += shortfall
    return split


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one request. Prompt counts INCLUDE the cached tokens, as Google reports.

    ``estimated`` is true when the counts were made by the gateway (a stream cut before the
    upstream reported usage, an upstream that reports none) rather than by the upstream.
    """

    prompt_text: int = 0
    prompt_image: int = 0
    prompt_audio: int = 0
    prompt_video: int = 0
    prompt_document: int = 0
    cached_total: int = 0
    cached_text: int = 0
    cached_image: int = 0
    cached_audio: int = 0
    cached_video: int = 0
    cached_document: int = 0
    tool_use_prompt: int = 0
    tool_use_text: int = 0
    tool_use_image: int = 0
    tool_use_audio: int = 0
    tool_use_video: int = 0
    tool_use_document: int = 0
    thoughts: int = 0
    output_text: int = 0
    output_image: int = 0
    output_audio: int = 0
    total: int = 0
    estimated: bool = False

    @property
    def prompt_total(self) -> int:
        """promptTokenCount: the whole prompt, cached tokens included."""
        return (
            self.prompt_text
            + self.prompt_image
            + self.prompt_audio
            + self.prompt_video
            + self.prompt_document
        )

    @property
    def candidates_total(self) -> int:
        """candidatesTokenCount: the answer, thoughts excluded."""
        return self.output_text + self.output_image + self.output_audio

    @property
    def cached_by_modality(self) -> dict[str, int]:
        return {
            "TEXT": self.cached_text,
            "IMAGE": self.cached_image,
            "AUDIO": self.cached_audio,
            "VIDEO": self.cached_video,
            "DOCUMENT": self.cached_document,
        }

    @property
    def context_tokens(self) -> int:
        """The prompt size that selects a long-context price tier (prompt + tool-use prompt)."""
        return self.prompt_total + self.tool_use_prompt

    @classmethod
    def from_metadata(cls, usage_metadata: object, *, estimated: bool = False) -> Usage:
        """Parse a ``usageMetadata`` object (camelCase; snake_case accepted too)."""
        meta: Mapping[str, Any] = usage_metadata if isinstance(usage_metadata, Mapping) else {}
        prompt = _split(
            _field(meta, "promptTokenCount", "prompt_token_count"),
            _field(meta, "promptTokensDetails", "prompt_tokens_details"),
        )
        cached = _split(
            _field(meta, "cachedContentTokenCount", "cached_content_token_count"),
            _field(meta, "cacheTokensDetails", "cache_tokens_details"),
        )
        tool = _split(
            _field(meta, "toolUsePromptTokenCount", "tool_use_prompt_token_count"),
            _field(meta, "toolUsePromptTokensDetails", "tool_use_prompt_tokens_details"),
        )
        out = _split(
            _field(meta, "candidatesTokenCount", "candidates_token_count"),
            _field(meta, "candidatesTokensDetails", "candidates_tokens_details"),
        )
        thoughts = _count(_field(meta, "thoughtsTokenCount", "thoughts_token_count"))
        # Output is billed as text, image or audio; other modalities count as text.
        output_text = out["TEXT"] + out["VIDEO"] + out["DOCUMENT"]
        computed = sum(prompt.values()) + sum(tool.values()) + sum(out.values()) + thoughts
        reported_total = _count(_field(meta, "totalTokenCount", "total_token_count"))
        return cls(
            prompt_text=prompt["TEXT"],
            prompt_image=prompt["IMAGE"],
            prompt_audio=prompt["AUDIO"],
            prompt_video=prompt["VIDEO"],
            prompt_document=prompt["DOCUMENT"],
            cached_total=sum(cached.values()),
            cached_text=cached["TEXT"],
            cached_image=cached["IMAGE"],
            cached_audio=cached["AUDIO"],
            cached_video=cached["VIDEO"],
            cached_document=cached["DOCUMENT"],
            tool_use_prompt=sum(tool.values()),
            tool_use_text=tool["TEXT"],
            tool_use_image=tool["IMAGE"],
            tool_use_audio=tool["AUDIO"],
            tool_use_video=tool["VIDEO"],
            tool_use_document=tool["DOCUMENT"],
            thoughts=thoughts,
            output_text=output_text,
            output_image=out["IMAGE"],
            output_audio=out["AUDIO"],
            total=reported_total or computed,
            estimated=estimated,
        )

    def as_record(self) -> dict[str, int]:
        """Flat integer counts for the ledger (``estimated`` as 0 or 1)."""
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}
