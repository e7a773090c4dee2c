"""What every console answer shares: the route record, the call a handler gets, the answer
it gives, and the headers that keep pages and answers out of other sites' reach."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from gemgate.asgi import JSON_TYPE, Request, Send
from gemgate.errors import GatewayError, InvalidArgument

MAX_BODY = 64 * 1024
CSRF_HEADER = "x-gemgate-csrf"

# Sent with every console answer. The page runs only its own scripts and styles, talks
# only to its own origin, and may not be framed.
SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (
        b"content-security-policy",
        b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
NO_STORE = (b"cache-control", b"no-store")


@dataclass(slots=True)
class Answer:
    status: int
    body: bytes
    content_type: bytes = JSON_TYPE
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def json_answer(data: Any, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None) -> Answer:
    return Answer(status, orjson.dumps(data), JSON_TYPE, [NO_STORE, *(headers or [])])


def error_answer(exc: GatewayError) -> Answer:
    return json_answer(exc.google_body(), exc.code, exc.headers())


async def send_answer(send: Send, answer: Answer) -> None:
    headers = [
        (b"content-type", answer.content_type),
        (b"content-length", str(len(answer.body)).encode()),
        *SECURITY_HEADERS,
        *answer.headers,
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


@dataclass(slots=True)
class Call:
    """One API call: the request, its path parameters, and (for a signed-in browser) the
    session's cookie token."""

    req: Request
    params: dict[str, str]
    session_token: str | None = None

    @property
    def query(self) -> dict[str, str]:
        return self.req.query

    async def json(self) -> dict[str, Any]:
        """The body as a JSON object (an empty body is ``{}``)."""
        raw = await self.req.body(MAX_BODY)
        if not raw.strip():
            return {}
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise InvalidArgument("The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise InvalidArgument("The request body must be a JSON object.")
        return data


Handler = Callable[[Call], Awaitable[Any]]
_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True, slots=True)
class ApiRoute:
    """One admin API operation; the OpenAPI description is built from these."""

    method: str
    pattern: str  # under /admin/api, e.g. "/keys/{id}"
    handler: Handler
    summary: str
    tag: str
    query: tuple[Param, ...] = ()
    body: str | None = None  # a schema name in the OpenAPI components
    response: str | None = None  # a schema name; None: the answer is described inline
    status: int = 200
    signin: bool = False  # authenticated by the admin key alone (it opens a session)
    produces: str = "application/json"
    regex: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        parts, pos = [], 0
        for m in _PARAM.finditer(self.pattern):
            parts.append(re.escape(self.pattern[pos : m.start()]))
            parts.append(f"(?P<{m.group(1)}>[^/]+)")
            pos = m.end()
        parts.append(re.escape(self.pattern[pos:]))
        object.__setattr__(self, "regex", re.compile("".join(parts)))

    @property
    def path_params(self) -> list[str]:
        return _PARAM.findall(self.pattern)
