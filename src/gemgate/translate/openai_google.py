"""Google's extension block of OpenAI chat requests -> the Gemini request.

Code written for Google's OpenAI-compatible endpoint sends Gemini-only settings in a
``google`` object. Google documents it with the openai SDK as
``extra_body={"extra_body": {"google": {...}}}``, which puts ``"extra_body": {"google":
{...}}`` in the request body; ``extra_body={"google": {...}}`` puts ``"google"`` at the top
level. Both are read. Keys are snake_case as Google documents them (lowerCamelCase is
taken too):

- ``thinking_config`` {``thinking_budget``, ``thinking_level``, ``include_thoughts``}
  -> ``generationConfig.thinkingConfig`` (with ``reasoning_effort`` only
  ``include_thoughts`` may be added: Google refuses the two together);
- ``cached_content`` -> ``cachedContent`` (a gateway cache name, resolved as on the
  Gemini door);
- ``safety_settings`` -> ``safetySettings``;
- ``thought_tag_marker``: thoughts come back inside the answer's content between
  ``<marker>`` and ``</marker>`` (instead of ``reasoning_content``), and such a block at the
  start of an assistant message goes back to the model as its thought.

Any other key is refused naming it.
"""

from __future__ import annotations

import re
from typing import Any

from gemgate.errors import InvalidArgument
from gemgate.types.schema import ENUMS

_LEVELS = ("minimal", "low", "medium", "high")
_MARKER = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,63}")


def _bad(path: str, desc: str) -> InvalidArgument:
    return InvalidArgument.field(path, desc)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _keys(block: dict[str, Any], path: str, known: frozenset[str]) -> dict[str, Any]:
    """``block`` with snake_case keys; an unknown or repeated key is refused."""
    out: dict[str, Any] = {}
    for key, value in block.items():
        name = _snake(key)
        if name not in known:
            raise _bad(f"{path}.{key}", f"unknown field '{key}'; Google's extension takes "
                       f"{', '.join(sorted(known))}")
        if name in out:
            raise _bad(f"{path}.{key}", f"'{name}' is given twice")
        if value is not None:
            out[name] = value
    return out


_TOP = frozenset({"thinking_config", "cached_content", "safety_settings", "thought_tag_marker"})
_THINKING = frozenset({"thinking_budget", "thinking_level", "include_thoughts"})
_SAFETY = frozenset({"category", "threshold"})


def google_block(body: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(its field path, the block) of the request's ``google`` block, if it has one."""
    found: list[tuple[str, Any]] = []
    extra = body.get("extra_body")
    if extra is not None:
        if not isinstance(extra, dict):
            raise _bad("extra_body", "must be an object")
        for key in extra:
            if key != "google":
                raise _bad(f"extra_body.{key}", f"unknown field '{key}'; only 'google' is read here")
        if extra.get("google") is not None:
            found.append(("extra_body.google", extra["google"]))
    if body.get("google") is not None:
        found.append(("google", body["google"]))
    if not found:
        return None
    if len(found) > 1:
        raise _bad("google", "give Google's extension block once (google or extra_body.google)")
    path, block = found[0]
    if not isinstance(block, dict):
        raise _bad(path, "must be an object")
    return path, block


def apply_google(
    path: str, block: dict[str, Any], request: dict[str, Any], config: dict[str, Any], *, effort: bool
) -> str | None:
    """Write the block into the Gemini ``request`` and its generationConfig ``config``
    (``effort``: the request also set ``reasoning_effort``); returns the thought tag marker."""
    fields = _keys(block, path, _TOP)
    thinking = fields.get("thinking_config")
    if thinking is not None:
        before = config.get("thinkingConfig") if effort else None
        config["thinkingConfig"] = {
            **(before if isinstance(before, dict) else {}),
            **_thinking(thinking, f"{path}.thinking_config", effort=effort),
        }
    cache = fields.get("cached_content")
    if cache is not None:
        if not isinstance(cache, str) or not cache.strip():
            raise _bad(f"{path}.cached_content", "must name a cached content (cachedContents/...)")
        request["cachedContent"] = cache.strip()
    settings = fields.get("safety_settings")
    if settings is not None:
        request["safetySettings"] = _safety(settings, f"{path}.safety_settings")
    marker = fields.get("thought_tag_marker")
    if marker is not None and (not isinstance(marker, str) or not _MARKER.fullmatch(marker)):
        raise _bad(f"{path}.thought_tag_marker", "must be a tag name such as 'think'")
    return marker


def _thinking(value: Any, path: str, *, effort: bool) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(path, "must be an object")
    fields = _keys(value, path, _THINKING)
    out: dict[str, Any] = {}
    if effort and ("thinking_budget" in fields or "thinking_level" in fields):
        raise _bad(path, "reasoning_effort and thinking_config's budget or level cannot be used together")
    budget = fields.get("thinking_budget")
    if budget is not None:
        if isinstance(budget, float) and budget.is_integer():
            budget = int(budget)
        if not isinstance(budget, int) or isinstance(budget, bool) or budget < -1:
            raise _bad(f"{path}.thinking_budget", "must be an integer (-1: dynamic, 0: off)")
        out["thinkingBudget"] = budget
    level = fields.get("thinking_level")
    if level is not None:
        if not isinstance(level, str) or level.lower() not in _LEVELS:
            raise _bad(f"{path}.thinking_level", f"must be one of {', '.join(_LEVELS)}")
        if budget is not None:
            raise _bad(f"{path}.thinking_level", "give thinking_level or thinking_budget, not both")
        out["thinkingLevel"] = level.upper()
    include = fields.get("include_thoughts")
    if include is not None:
        if not isinstance(include, bool):
            raise _bad(f"{path}.include_thoughts", "must be a boolean")
        out["includeThoughts"] = include
    return out


def _safety(value: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _bad(path, "must be an array")
    out: list[dict[str, Any]] = []
    for i, setting in enumerate(value):
        spath = f"{path}[{i}]"
        if not isinstance(setting, dict):
            raise _bad(spath, "must be an object")
        fields = _keys(setting, spath, _SAFETY)
        category = fields.get("category")
        threshold = fields.get("threshold")
        if category not in ENUMS["HarmCategory"][1:]:
            raise _bad(f"{spath}.category", "must be a HarmCategory such as HARM_CATEGORY_HARASSMENT")
        if threshold not in ENUMS["HarmBlockThreshold"][1:]:
            raise _bad(f"{spath}.threshold", "must be a HarmBlockThreshold such as BLOCK_NONE")
        out.append({"category": category, "threshold": threshold})
    return out


def split_tagged(text: str, marker: str) -> tuple[str, str] | None:
    """(thought, rest) of assistant content that starts with a ``<marker>`` block."""
    head, tail = f"<{marker}>", f"</{marker}>"
    stripped = text.lstrip()
    if not stripped.startswith(head):
        return None
    end = stripped.find(tail, len(head))
    if end < 0:
        return None
    return stripped[len(head) : end], stripped[end + len(tail) :]
