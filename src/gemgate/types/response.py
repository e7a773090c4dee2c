"""Reading canonical Gemini responses."""

from __future__ import annotations

from typing import Any


def candidate_text(data: dict[str, Any]) -> str:
    """The text of every candidate's parts (thoughts included), in order."""
    out: list[str] = []
    for cand in data.get("candidates") or ():
        content = cand.get("content") if isinstance(cand, dict) else None
        for part in (content or {}).get("parts") or ():
            text = part.get("text") if isinstance(part, dict) else None
            if isinstance(text, str):
                out.append(text)
    return "".join(out)
