"""gemgate: a self-hosted LLM API gateway that speaks Google's Gemini REST protocol."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gemgate.settings import Settings

if TYPE_CHECKING:
    from gemgate.app import create_app

__all__ = ["Settings", "create_app"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from gemgate.app import create_app

        return create_app
    raise AttributeError(name)
