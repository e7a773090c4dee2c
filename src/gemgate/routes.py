"""Path -> handler table for every door.

Gemini paths are ``{prefix}/{version}/models/{model}:{method}`` where the model may contain
``/`` (the method is split off at the LAST ``:``, also when sent as ``%3A``) and
``{prefix}/{version}/models[/{model}]``. ``GET /v1/models`` is both Gemini's (version v1,
empty prefix) and OpenAI's; a request carrying a Gemini-style key (``x-goog-api-key`` or
``?key=``) is Gemini's, any other OpenAI's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import unquote

from gemgate.asgi import Request

VERSIONS = frozenset({"v1beta", "v1", "v1alpha"})

Handler = Callable[..., Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Match:
    name: str  # handler name, e.g. "gemini.call"
    params: dict[str, str]


def _gemini(rest: str, http_method: str) -> Match | None:
    """``rest`` is the path after the prefix, still percent-encoded."""
    version, sep, tail = rest.lstrip("/").partition("/")
    if version not in VERSIONS:
        return None
    if not sep or tail == "models" or tail == "models/":
        if tail.rstrip("/") == "models" and http_method == "GET":
            return Match("gemini.list", {"version": version})
        return None
    if not tail.startswith("models/"):
        return None
    target = unquote(tail[len("models/") :])
    if ".." in target.split("/") or "\\" in target:
        return Match("bad_path", {"reason": "model id must not contain '..'"})
    if http_method == "GET":
        return Match("gemini.get", {"version": version, "model": target}) if target else None
    if http_method != "POST":
        return None
    model, colon, method = target.rpartition(":")
    if not colon or not model or not method:
        return Match("gemini.missing_method", {"version": version, "model": target})
    return Match("gemini.call", {"version": version, "model": model, "method": method})


def _is_gemini_style(req: Request) -> bool:
    return "x-goog-api-key" in req.headers or "key" in req.query


OPENAI_ROUTES = {
    ("POST", "/v1/chat/completions"): "openai.chat",
    ("POST", "/v1/embeddings"): "openai.embeddings",
    ("POST", "/v1/images/generations"): "openai.images_generate",
    ("POST", "/v1/images/edits"): "openai.images_edit",
    ("GET", "/v1/models"): "openai.list",
}


def match(req: Request, prefixes: tuple[str, ...]) -> Match | None:
    path = req.path
    if path in ("/healthz", "/readyz"):
        return Match("health", {})
    if path == "/metrics" and req.method == "GET":
        return Match("metrics", {})
    if path.startswith("/admin/"):
        return Match("admin", {"path": path[len("/admin") :]})
    openai = OPENAI_ROUTES.get((req.method, path))
    if openai is not None and not (openai == "openai.list" and _is_gemini_style(req)):
        return Match(openai, {})
    if req.method == "GET" and path.startswith("/v1/models/") and not _is_gemini_style(req):
        return Match("openai.get", {"model": unquote(path[len("/v1/models/") :])})
    # Longest prefix first, so "/gemini/v1beta/..." is not read as prefix "".
    for prefix in sorted(prefixes, key=len, reverse=True):
        if prefix and not path.startswith(prefix + "/"):
            continue
        found = _gemini(path[len(prefix) :], req.method)
        if found is not None:
            return found
    return None
