"""Validate a Gemini request body against :mod:`gemgate.types.schema` and normalise it.

Accepts proto3 JSON as Google does: lowerCamelCase and snake_case field names (mixed
freely), enum values as names or numbers, int64 as numbers or numeric strings, bytes as
standard or URL-safe base64 with or without padding. Returns the same data with camelCase
field names and enum names; free-form Struct fields are returned exactly as sent.

Errors are :class:`~gemgate.errors.InvalidArgument` naming the field path
(``contents[0].parts[1].inlineData.data``).

Every JSON text a client sends (a body, or JSON inside a string such as a tool call's
arguments) is parsed by :func:`parse_json` / :func:`loads_strict`, which refuse what the
gateway would otherwise validate one way and forward another, or fail on later: nesting
deeper than :data:`MAX_JSON_DEPTH`, an object naming the same key twice (parsers differ on
which one wins, and the original bytes may go upstream), and integers outside 64 bits.
The checks cost a walk over the parsed containers and one scan of the text (a few
microseconds for a typical request); a body is parsed twice only when that scan finds
more ``"key":`` than the parsed objects hold.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson

from gemgate.errors import InvalidArgument
from gemgate.types.schema import ENUMS, MESSAGES, OPEN, REQUEST_MESSAGE, Spec

_BASE64 = re.compile(rb"[A-Za-z0-9+/\-_]*={0,2}")
_INT = re.compile(r"-?\d+")

#: The deepest nesting of objects and arrays accepted in a client's JSON.
MAX_JSON_DEPTH = 100
#: The deepest nesting accepted in JSON carried inside a string (tool call arguments).
MAX_EMBEDDED_DEPTH = 64
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
# Where a JSON text names an object key: a string's closing quote, whitespace, a colon.
# Every key matches once; a string that itself contains a quote and a colon matches too,
# so the count never falls below the keys in the text.
_KEY_COLON = re.compile(rb'"[ \t\r\n]*:')
_CONTAINERS = (dict, list)
_LONG_DIGITS = re.compile(rb"\d{19}")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _aliases() -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {}
    for message, fields in MESSAGES.items():
        names: dict[str, str] = {}
        for field in fields:
            names[field] = field
            names[_snake(field)] = field
        table[message] = names
    return table


_ALIASES = _aliases()
_ENUM_NAMES = {name: frozenset(values) for name, values in ENUMS.items()}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


class _Violation(Exception):
    """A bad value somewhere inside the body. Each enclosing level adds its own segment as
    the violation propagates, so a valid body never pays for building field paths."""

    def __init__(self, description: str, *, unknown: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.unknown = unknown  # the name of an unknown field
        self.segments: list[str] = []  # innermost first

    def path(self) -> str:
        out = ""
        for segment in reversed(self.segments):
            out = out + segment if segment.startswith("[") else _join(out, segment)
        return out

    def error(self) -> InvalidArgument:
        path = self.path()
        if self.unknown is None:
            return InvalidArgument.field(path, self.description)
        field = _join(path, self.unknown)
        at = f" at '{path}'" if path else ""
        return InvalidArgument(
            f'Invalid JSON payload received. Unknown name "{self.unknown}"{at}: Cannot find field.',
            details=[
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [
                        {"field": field, "description": f'Unknown name "{self.unknown}"'}
                    ],
                }
            ],
            param=field,
        )


def _bad(expected: str, value: Any) -> _Violation:
    return _Violation(f"expected {expected}, got {_type_name(value)}")


def _scalar(kind: str, value: Any) -> Any:
    if kind == "string":
        if not isinstance(value, str):
            raise _bad("a string", value)
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise _bad("a boolean", value)
        return value
    if kind == "int":
        if isinstance(value, bool):
            raise _bad("an integer", value)
        if (isinstance(value, float) and value.is_integer()) or (
            isinstance(value, str) and _INT.fullmatch(value)
        ):
            value = int(value)
        if isinstance(value, int):
            if not INT64_MIN <= value <= INT64_MAX:
                raise _Violation("integer out of range (64 bits)")
            return value
        raise _bad("an integer", value)
    if kind == "number":
        if isinstance(value, bool):
            raise _bad("a number", value)
        if isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                raise _bad("a finite number", value)
            return value
        if isinstance(value, str) and value in ("NaN", "Infinity", "-Infinity"):
            raise _bad("a finite number", value)
        raise _bad("a number", value)
    if kind == "bytes":
        if not isinstance(value, str):
            raise _bad("base64 data in a string", value)
        raw = value.encode("ascii", "replace")
        if not _BASE64.fullmatch(raw) or len(raw.rstrip(b"=")) % 4 == 1:
            raise _Violation("invalid base64 data")
        return value
    if kind == "struct":
        if not isinstance(value, dict):
            raise _bad("a JSON object", value)
        return value
    if kind == "value":
        return value
    raise AssertionError(f"unknown field kind {kind}")


def _value(spec: Spec, value: Any) -> Any:
    if isinstance(spec, str):
        return _scalar(spec, value)
    kind, arg = spec
    if kind == "msg":
        return _message(arg, value)
    if kind == "list":
        if not isinstance(value, list):
            raise _bad("a list", value)
        items = []
        for i, item in enumerate(value):
            try:
                items.append(_value(arg, item))
            except _Violation as v:
                v.segments.append(f"[{i}]")
                raise
        return items
    if kind == "enum":
        values = ENUMS[arg]
        if isinstance(value, str):
            if value in _ENUM_NAMES[arg]:
                return value
            raise _Violation(f"invalid value {value!r}; expected one of {', '.join(values[1:])}")
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(values):
            return values[value]
        raise _Violation(f"invalid enum value {value!r}")
    raise AssertionError(f"unknown spec {spec!r}")


def _message(name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad("an object", value)
    fields = MESSAGES[name]
    aliases = _ALIASES[name]
    out: dict[str, Any] = {}
    for key, item in value.items():
        field = aliases.get(key)
        if field is None:
            if name in OPEN:
                out[key] = item
                continue
            raise _Violation(f'Unknown name "{key}"', unknown=key)
        if field in out:
            twice = _Violation("field given twice (in two casings)")
            twice.segments.append(field)
            raise twice
        if item is None:
            continue
        try:
            out[field] = _value(fields[field], item)
        except _Violation as v:
            v.segments.append(field)
            raise
    return out


def parse_json(body: bytes) -> Any:
    """A request body's JSON, within the bounds described at the top of this module."""
    if not body:
        raise InvalidArgument("The request body is empty; a JSON object is required.")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidArgument(f"Invalid JSON payload received. {exc}") from None
    _check_json(data, body, "", MAX_JSON_DEPTH)
    return data


def loads_strict(text: str | bytes, path: str, *, max_depth: int = MAX_EMBEDDED_DEPTH) -> Any:
    """JSON carried in the string at ``path`` (a tool call's arguments), within the same
    bounds as a body; errors name ``path``. Raises ``ValueError`` when it is not JSON."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(str(exc)) from None
    _check_json(data, raw, path, max_depth)
    if _LONG_DIGITS.search(raw):
        _check_integer_literals(raw, path)
    return data


def _check_json(data: Any, raw: bytes, path: str, max_depth: int) -> None:
    if type(data) not in _CONTAINERS:
        _check_number(data, path)
        return
    keys = _scan(data, 1, max_depth)
    if keys < 0:
        where, _ = _deepest(data, path, max_depth)
        raise InvalidArgument.field(
            where, f"JSON nested deeper than {max_depth} levels is not accepted"
        )
    # Every key has a colon after it: as many colons as parsed keys means no key repeats.
    if raw.count(b":") > keys and len(_KEY_COLON.findall(raw)) > keys:
        _find_duplicates(raw, path)


def _scan(node: Any, depth: int, limit: int) -> int:
    """Keys in all objects under ``node``; -1 when nesting exceeds ``limit``."""
    if depth > limit:
        return -1
    keys = 0
    if type(node) is dict:
        keys = len(node)
        values: Any = node.values()
    else:
        values = node
    for value in values:
        if type(value) in _CONTAINERS:
            inner = _scan(value, depth + 1, limit)
            if inner < 0:
                return -1
            keys += inner
    return keys


def _segment(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else _join(path, str(key))


def _deepest(node: Any, path: str, limit: int, depth: int = 1) -> tuple[str, bool]:
    """The path of the first container nested beyond ``limit``, shortened when long."""
    if depth > limit:
        return path, True
    items = node.items() if type(node) is dict else enumerate(node)
    for key, value in items:
        if type(value) in _CONTAINERS:
            where, found = _deepest(value, _segment(path, key), limit, depth + 1)
            if found:
                if depth == 1 and len(where) > 120:
                    where = where[:120] + "..."
                return where, True
    return path, False


class _Duplicated(dict[str, Any]):
    key = ""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    dup = _Duplicated(obj)
    for key, _value in pairs:
        if key in seen:
            dup.key = key
            break
        seen.add(key)
    return dup


def _find_duplicates(raw: bytes, path: str) -> None:
    """Parse again, keeping every key, and refuse the first object that repeats one."""
    data = json.loads(raw, object_pairs_hook=_pairs)
    stack: list[tuple[Any, str]] = [(data, path)]
    while stack:
        node, where = stack.pop()
        if isinstance(node, _Duplicated):
            raise InvalidArgument.field(
                _join(where, node.key), f'the key "{node.key}" is given more than once'
            )
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            if type(value) in _CONTAINERS or isinstance(value, _Duplicated):
                stack.append((value, _segment(where, key)))


def _check_number(value: Any, path: str) -> None:
    if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        raise InvalidArgument.field(path, "integer out of range (64 bits)")


def _check_integer_literals(raw: bytes, path: str) -> None:
    """Refuse integer literals beyond 64 bits (orjson would read them as floats, changing
    the value; other parsers fail or read them exactly), naming where they are."""
    def bounded(literal: str) -> int:
        value = int(literal)
        if not INT64_MIN <= value <= INT64_MAX:
            raise _Violation(literal)
        return value

    try:
        json.loads(raw, parse_int=bounded)
    except _Violation as v:
        where = _find_literal(orjson.loads(raw), path, v.description)
        raise InvalidArgument.field(where, "integer out of range (64 bits)") from None


def _find_literal(node: Any, path: str, literal: str) -> str:
    """Where the integer ``literal`` sits in ``node`` (as orjson read it: exactly, or as the
    nearest float)."""
    exact, near = int(literal), float(literal)
    stack: list[tuple[Any, str]] = [(node, path)]
    while stack:
        current, where = stack.pop()
        if type(current) not in _CONTAINERS:
            if current == exact or (type(current) is float and current == near):
                return where
            continue
        items = current.items() if type(current) is dict else enumerate(current)
        for key, item in items:
            stack.append((item, _segment(where, key)))
    return path


def normalise(message: str, data: Any) -> dict[str, Any]:
    try:
        return _message(message, data)
    except _Violation as v:
        raise v.error() from None


def _check_generation_config(cfg: dict[str, Any], path: str) -> None:
    def bound(name: str, low: float, high: float | None) -> None:
        v = cfg.get(name)
        if v is not None and (v < low or (high is not None and v > high)):
            limit = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise InvalidArgument.field(f"{path}.{name}", f"must be {limit}, got {v}")

    bound("temperature", 0, 2)
    bound("topP", 0, 1)
    bound("topK", 1, None)
    bound("candidateCount", 1, 8)
    bound("maxOutputTokens", 1, None)
    stops = cfg.get("stopSequences")
    if stops is not None and len(stops) > 5:
        raise InvalidArgument.field(f"{path}.stopSequences", "at most 5 stop sequences are allowed")


def _check_contents(contents: list[dict[str, Any]], path: str) -> None:
    for i, content in enumerate(contents):
        role = content.get("role")
        if role not in (None, "", "user", "model", "function", "tool"):
            raise InvalidArgument.field(
                f"{path}[{i}].role", f"role must be 'user' or 'model', got {role!r}"
            )
        if not content.get("parts"):
            raise InvalidArgument.field(f"{path}[{i}].parts", "must contain at least one part")


def check_generate(req: dict[str, Any], path: str = "") -> None:
    contents = req.get("contents")
    if not contents:
        raise InvalidArgument.field(_join(path, "contents"), "contents is not specified")
    _check_contents(contents, _join(path, "contents"))
    cfg = req.get("generationConfig")
    if cfg:
        _check_generation_config(cfg, _join(path, "generationConfig"))


def parse_request(method: str, body: bytes) -> dict[str, Any]:
    """Parse, validate and normalise one request body for ``method``."""
    data = parse_json(body)
    if not isinstance(data, dict):
        raise InvalidArgument("Invalid JSON payload received. Expected a JSON object.")
    req = normalise(REQUEST_MESSAGE[method], data)
    if method in ("generateContent", "streamGenerateContent"):
        check_generate(req)
    elif method == "countTokens":
        inner = req.get("generateContentRequest")
        if inner is not None:
            if "contents" in req:
                raise InvalidArgument.field(
                    "contents", "give either contents or generateContentRequest, not both"
                )
            check_generate(inner, "generateContentRequest")
        elif not req.get("contents"):
            raise InvalidArgument.field("contents", "contents is not specified")
        else:
            _check_contents(req["contents"], "contents")
    elif method == "embedContent":
        if not req.get("content"):
            raise InvalidArgument.field("content", "content is not specified")
    elif method == "batchEmbedContents" and not req.get("requests"):
        raise InvalidArgument.field("requests", "requests is not specified")
    return req
