"""The route table: (scope, method, path pattern) -> (door, operation), for HTTP and
WebSocket alike. A door adds its paths here and nowhere else.

Patterns are matched against the percent-decoded path (so ``%3A`` is a ``:`` and ``%2F`` a
``/``). ``{version}`` is ``v1``, ``v1beta`` or ``v1alpha``; ``{model+}`` is one or more
segments (model ids may contain ``/``); ``{model+}:{method}`` splits at the LAST ``:``.
Gemini's paths are mounted under every configured path prefix (``""`` and ``/gemini``
by default). ``GET /v1/models`` is both Gemini's (version v1, empty prefix) and OpenAI's:
a request carrying a Gemini-style key (``x-goog-api-key`` or ``?key=``) is Gemini's, one
carrying ``anthropic-version`` (and no Gemini-style key) Anthropic's.
A path with a ``..`` segment is refused before any matching.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote

from gemgate.asgi import Request

VERSIONS = ("v1beta", "v1", "v1alpha")
GEMINI_METHODS = (
    "generateContent",
    "streamGenerateContent",
    "countTokens",
    "embedContent",
    "batchEmbedContents",
)

Guard = Callable[[Request], bool]
# The Live API's service, as the SDKs name it in the WebSocket path.
LIVE_SERVICE = "google.ai.generativelanguage.{version}.GenerativeService"


def gemini_style(req: Request) -> bool:
    return "x-goog-api-key" in req.headers or "key" in req.query


def not_gemini_style(req: Request) -> bool:
    return not gemini_style(req)


def anthropic_style(req: Request) -> bool:
    return "anthropic-version" in req.headers and not gemini_style(req)


_PARAM = re.compile(r"\{(\w+)(\+?)\}")
_PARAM_RE = {
    "version": "(?P<version>" + "|".join(VERSIONS) + ")",
    "method": "(?P<method>[A-Za-z]+)",
}


@dataclass(frozen=True, slots=True)
class Route:
    scope: str  # "http" | "websocket"
    method: str  # HTTP method ("GET", "POST", ...); "" for WebSocket
    pattern: str
    target: str  # a door's name, or one of the app's own handlers ("health", "admin", ...)
    operation: str = ""
    guard: Guard | None = None
    gemini: bool = False  # mounted under every path prefix
    regex: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(_compile(self.pattern)))


def _compile(pattern: str) -> str:
    out = []
    pos = 0
    for m in _PARAM.finditer(pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        name, rest = m.group(1), m.group(2)
        out.append(_PARAM_RE.get(name) or (f"(?P<{name}>.+)" if rest else f"(?P<{name}>[^/]+)"))
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: dict[str, str]

    @property
    def target(self) -> str:
        return self.route.target

    @property
    def operation(self) -> str:
        return self.route.operation


def http(method: str, pattern: str, target: str, operation: str = "", **kw: object) -> Route:
    return Route("http", method, pattern, target, operation, **kw)  # type: ignore[arg-type]


def websocket(pattern: str, target: str, operation: str = "", **kw: object) -> Route:
    return Route("websocket", "", pattern, target, operation, **kw)  # type: ignore[arg-type]


def _resource(method: str, pattern: str, operation: str) -> Route:
    return http(method, pattern, "resources", operation, gemini=True)


# Before the model routes: ``models/{m}:batchGenerateContent`` and
# ``models/{m}/operations/{id}`` would match those too.
RESOURCE_ROUTES: tuple[Route, ...] = (
    _resource("POST", "/upload/{version}/files", "files.upload"),
    _resource("GET", "/{version}/files", "files.list"),
    _resource("GET", "/{version}/files/{file}:download", "files.download"),
    _resource("GET", "/download/{version}/files/{file}:download", "files.download_root"),
    _resource("GET", "/{version}/files/{file}", "files.get"),
    _resource("DELETE", "/{version}/files/{file}", "files.delete"),
    _resource("POST", "/{version}/cachedContents", "caches.create"),
    _resource("GET", "/{version}/cachedContents", "caches.list"),
    _resource("GET", "/{version}/cachedContents/{cache}", "caches.get"),
    _resource("PATCH", "/{version}/cachedContents/{cache}", "caches.update"),
    _resource("DELETE", "/{version}/cachedContents/{cache}", "caches.delete"),
    _resource("POST", "/{version}/models/{model+}:batchGenerateContent", "batches.generate"),
    _resource("POST", "/{version}/models/{model+}:asyncBatchEmbedContent", "batches.embed"),
    _resource("GET", "/{version}/batches", "batches.list"),
    _resource("POST", "/{version}/batches/{batch}:cancel", "batches.cancel"),
    _resource("GET", "/{version}/batches/{batch}", "batches.get"),
    _resource("DELETE", "/{version}/batches/{batch}", "batches.delete"),
    _resource("GET", "/{version}/models/{model+}/operations/{operation}", "operations.get"),
)

ROUTES: tuple[Route, ...] = (
    http("GET", "/healthz", "health"),
    http("GET", "/readyz", "health"),
    http("GET", "/metrics", "metrics"),
    http("GET", "/admin", "admin"),
    http("GET", "/admin/", "admin"),
    http("GET", "/admin/{path+}", "admin"),
    http("POST", "/admin/{path+}", "admin"),
    # --- Anthropic ---
    http("POST", "/v1/messages", "anthropic", "messages"),
    http("POST", "/v1/messages/count_tokens", "anthropic", "count_tokens"),
    http("HEAD", "/", "health"),  # Claude Code's reachability probe of its base URL
    http("GET", "/v1/models", "anthropic", "models.list", guard=anthropic_style),
    http("GET", "/v1/models/{model+}", "anthropic", "models.get", guard=anthropic_style),
    # --- OpenAI ---
    http("POST", "/v1/chat/completions", "openai", "chat.completions"),
    http("POST", "/v1/embeddings", "openai", "embeddings"),
    http("POST", "/v1/images/generations", "openai", "images.generations"),
    http("POST", "/v1/images/edits", "openai", "images.edits"),
    http("GET", "/v1/models", "openai", "models.list", guard=not_gemini_style),
    http("GET", "/v1/models/{model+}", "openai", "models.get", guard=not_gemini_style),
    # --- OpenAI Responses ---
    http("POST", "/v1/responses", "openai_responses", "responses.create"),
    http("POST", "/v1/responses/compact", "openai_responses", "responses.compact"),
    http("GET", "/v1/responses/{response_id}", "openai_responses", "responses.get"),
    http("DELETE", "/v1/responses/{response_id}", "openai_responses", "responses.delete"),
    http("GET", "/v1/responses/{response_id}/input_items", "openai_responses", "responses.input_items"),
    http("POST", "/v1/responses/{response_id}/cancel", "openai_responses", "responses.cancel"),
    # --- Gemini: stateful resources (files, cachedContents, batches, operations) ---
    *RESOURCE_ROUTES,
    # --- Gemini ---
    http("POST", "/{version}/models/{model+}:{method}", "gemini", "model.call", gemini=True),
    http("POST", "/{version}/models/{model+}", "gemini", "missing_method", gemini=True),
    http("GET", "/{version}/models", "gemini", "models.list", gemini=True),
    http("GET", "/{version}/models/", "gemini", "models.list", gemini=True),
    http("GET", "/{version}/models/{model+}", "gemini", "models.get", gemini=True),
    # --- Gemini Live (WebSocket) and its ephemeral tokens ---
    *(
        websocket(f"{slashes}ws/{LIVE_SERVICE}.{method}", "gemini_live", method, gemini=True)
        for slashes in ("/", "//")
        for method in ("BidiGenerateContent", "BidiGenerateContentConstrained")
    ),
    http("POST", "/{version}/auth_tokens", "auth_tokens", "create", gemini=True),
    # --- Gemini Interactions ---
    http("POST", "/{version}/interactions", "interactions", "create", gemini=True),
    http("GET", "/{version}/interactions/{id}", "interactions", "get", gemini=True),
    http("POST", "/{version}/interactions/{id}/cancel", "interactions", "cancel", gemini=True),
    http("POST", "/{version}/interactions/{id}:cancel", "interactions", "cancel", gemini=True),
    http("DELETE", "/{version}/interactions/{id}", "interactions", "delete", gemini=True),
)


class RouteTable:
    """Exact paths by dictionary lookup; patterned ones in table order, per scope and method.

    Gemini's model calls (``models/{model}:generateContent`` and the other methods of
    :data:`GEMINI_METHODS`) are the hot path: they are tried first, by one regex that
    matches only those methods, so no other route can be meant by such a path."""

    def __init__(self, routes: Iterable[Route], prefixes: Iterable[str]) -> None:
        self._exact: dict[tuple[str, str, str], list[Route]] = {}
        self._patterned: list[Route] = []
        self._by_method: dict[tuple[str, str], list[Route]] = {}
        self._hot: list[tuple[re.Pattern[str], Route]] = []
        methods = "|".join(GEMINI_METHODS)
        # Longest prefix first, so "/gemini/v1beta/..." is not read as prefix "".
        ordered = sorted(set(prefixes), key=len, reverse=True)
        for route in routes:
            mounted = [route]
            if route.gemini:
                mounted = [
                    Route(route.scope, route.method, p + route.pattern, route.target,
                          route.operation, route.guard, gemini=False)
                    for p in ordered
                ]
            for r in mounted:
                if "{" in r.pattern:
                    self._patterned.append(r)
                    self._by_method.setdefault((r.scope, r.method), []).append(r)
                    if r.operation == "model.call":
                        hot = _compile(r.pattern).replace(_PARAM_RE["method"], f"(?P<method>{methods})")
                        self._hot.append((re.compile(hot), r))
                else:
                    self._exact.setdefault((r.scope, r.method, r.pattern), []).append(r)

    def match(self, scope: str, method: str, path: str, req: Request | None = None) -> Match | None:
        """The first route for this scope, method and (percent-decoded) path whose guard
        passes; None when none does."""
        if method == "POST" and scope == "http":
            for regex, route in self._hot:
                m = regex.fullmatch(path)
                if m is not None:
                    return Match(route, m.groupdict())
        for route in self._exact.get((scope, method, path), ()):
            if route.guard is None or (req is not None and route.guard(req)):
                return Match(route, {})
        for route in self._by_method.get((scope, method), ()):
            m = route.regex.fullmatch(path)
            if m is not None and (route.guard is None or (req is not None and route.guard(req))):
                return Match(route, m.groupdict())
        return None

    def allows(self, scope: str, path: str) -> list[str]:
        """The methods some route takes on this path (for 405 answers)."""
        found = {r.method for (s, _m, p), rs in self._exact.items() if s == scope and p == path for r in rs}
        found |= {r.method for r in self._patterned if r.scope == scope and r.regex.fullmatch(path)}
        return sorted(found)


def decoded_path(raw: str) -> str | None:
    """The path to match, percent-decoded once; None when a segment is ``..`` (or the path
    smuggles a backslash)."""
    path = unquote(raw)
    if ".." in path.split("/") or "\\" in path:
        return None
    return path
