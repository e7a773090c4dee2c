"""The OpenAPI 3.1 description of the admin API, built from its route table
(:mod:`gemgate.admin.api_routes`) and the schemas below."""

from __future__ import annotations

from typing import Any

from gemgate.admin.web import CSRF_HEADER, ApiRoute

S = dict[str, Any]


def _obj(props: S, required: tuple[str, ...] = (), extra: bool = False) -> S:
    out: S = {"type": "object", "properties": props, "additionalProperties": extra}
    if required:
        out["required"] = list(required)
    return out


STR: S = {"type": "string"}
INT: S = {"type": "integer"}
BOOL: S = {"type": "boolean"}
USD: S = {"type": "string", "pattern": r"^-?\d+\.\d{9}$", "description": "USD, nine decimals"}
USD_IN: S = {
    "oneOf": [{"type": "string", "pattern": r"^\d+(\.\d{1,9})?$"}, {"type": "integer", "minimum": 0}],
    "description": 'USD as a decimal string ("2.50") or an integer; never a fraction',
}
TIME: S = {"type": "string", "format": "date-time"}


def _null(schema: S) -> S:
    return {"oneOf": [schema, {"type": "null"}]}


STRINGS: S = {"type": "array", "items": STR}
KEY_SETTINGS: S = {
    "models": {**_null(STRINGS), "description": "Model ids the key may use; null: all"},
    "allowed_ips": {**_null(STRINGS), "description": "Addresses or CIDR ranges; null: any"},
    "expires_at": _null(STR),
    "budget_usd": _null(USD_IN),
    "rpm": {**_null({"type": "integer", "minimum": 0}), "description": "0 or null: no limit"},
    "log_bodies": BOOL,
}
KEY: S = _obj(
    {
        "id": INT, "name": STR, "prefix": STR,
        "status": {"type": "string", "enum": ["active", "revoked", "expired"]},
        "models": _null(STRINGS), "allowed_ips": _null(STRINGS), "expires_at": _null(TIME),
        "revoked_at": _null(TIME), "created_at": TIME, "budget_nanos": _null(INT),
        "budget_usd": _null(USD), "spent_nanos": INT, "spent_usd": USD, "rpm": _null(INT),
        "log_bodies": BOOL,
    },
    ("id", "name", "prefix", "status"),
)
TOKENS = (
    "prompt_tokens", "prompt_text", "prompt_image", "prompt_audio", "prompt_video",
    "prompt_document", "cached_tokens", "tool_use_prompt_tokens", "thoughts_tokens",
    "output_text", "output_image", "output_audio", "total_tokens",
)
USAGE_ROW: S = _obj(
    {
        "day": STR, "hour": STR, "model": STR, "key": _null(STR), "channel": _null(STR),
        "requests": INT, "errors": INT, "interrupted": INT, "estimated": INT,
        **{t: INT for t in TOKENS}, "cost_nanos": INT, "cost_usd": USD,
    },
    ("requests", "cost_nanos", "cost_usd"),
)
LOG_ROW: S = _obj(
    {
        "id": INT, "request_id": STR, "started_at": TIME, "key_id": _null(INT),
        "key_name": _null(STR), "model": STR, "channel": _null(STR), "provider": STR,
        "upstream_key": _null(STR), "door": STR, "method": STR, "status": STR,
        "http_status": INT, "error": _null(STR), "cost_nanos": INT, "cost_usd": USD,
        "latency_ms": INT, "ttfb_ms": _null(INT), "attempts": INT,
        **{t: INT for t in TOKENS},
    },
    ("id", "request_id", "started_at", "model", "status"),
    extra=True,
)
CHANNEL: S = _obj(
    {
        "model": STR, "channel": STR, "provider": STR, "upstream_model": STR, "priority": INT,
        "weight": INT, "enabled": BOOL,
        "circuit": {"type": "string", "enum": ["closed", "open", "half_open"]},
        "retry_in_s": {"type": "number"}, "successes": INT, "failures": INT,
        "consecutive_failures": INT, "error_rate": {"type": "number"},
        "latency_ms": _null({"type": "number"}),
        "keys": {"type": "array", "items": {"$ref": "#/components/schemas/UpstreamKey"}},
    },
    ("model", "channel", "enabled", "circuit"),
)
SCHEMAS: dict[str, S] = {
    "Error": _obj(
        {"error": _obj({"code": INT, "message": STR, "status": STR,
                        "details": {"type": "array", "items": {"type": "object"}}},
                       ("code", "message", "status"))},
        ("error",),
    ),
    "Session": _obj({"csrf": _null(STR), "expires_at": _null(TIME)}, ("csrf", "expires_at")),
    "SignedOut": _obj({"signed_out": BOOL}, ("signed_out",)),
    "Key": KEY,
    "KeyList": _obj({"keys": {"type": "array", "items": {"$ref": "#/components/schemas/Key"}}}, ("keys",)),
    "KeyCreate": _obj({"name": {"type": "string", "minLength": 1, "maxLength": 200}, **KEY_SETTINGS}, ("name",)),
    "KeyUpdate": _obj({"name": {"type": "string", "minLength": 1, "maxLength": 200}, **KEY_SETTINGS}),
    "KeyCreated": _obj(
        {"key": {"type": "string", "description": "The key: shown in this answer only"},
         "record": {"$ref": "#/components/schemas/Key"}},
        ("key", "record"),
    ),
    "TopUp": _obj({"usd": USD_IN}, ("usd",)),
    "UpstreamKey": _obj(
        {"label": STR, "state": {"type": "string", "enum": ["ok", "resting", "rejected", "off"]}},
        ("label", "state"),
    ),
    "Channel": CHANNEL,
    "Provider": _obj(
        {"name": STR, "channels": STRINGS,
         "keys": {"type": "array", "items": {"$ref": "#/components/schemas/UpstreamKey"}}},
        ("name", "channels", "keys"),
    ),
    "ChannelList": _obj(
        {"channels": {"type": "array", "items": {"$ref": "#/components/schemas/Channel"}},
         "providers": {"type": "array", "items": {"$ref": "#/components/schemas/Provider"}}},
        ("channels", "providers"),
    ),
    "ChannelState": _obj({"channel": STR, "enabled": BOOL}, ("channel", "enabled")),
    "UpstreamKeyState": _obj({"provider": STR, "key": STR, "enabled": BOOL}, ("provider", "key", "enabled")),
    "UsageRow": USAGE_ROW,
    "UsageReport": _obj({"rows": {"type": "array", "items": {"$ref": "#/components/schemas/UsageRow"}}}, ("rows",)),
    "LogRow": LOG_ROW,
    "LogPage": _obj(
        {"rows": {"type": "array", "items": {"$ref": "#/components/schemas/LogRow"}},
         "next": {**_null(INT), "description": "before= for the next (older) page; null: last"}},
        ("rows", "next"),
    ),
    "LogRecord": {
        "allOf": [{"$ref": "#/components/schemas/LogRow"}],
        "type": "object",
        "properties": {
            "failed_attempts": {"type": "array", "items": {"type": "object"}},
            "bodies": _null(_obj({"request": _null(STR), "response": _null(STR)})),
        },
    },
}
ERRORS = {
    "400": "A bad parameter or field (named in the message)",
    "401": "No admin key and no console session",
    "403": "A wrong admin key, a cross-site request, or a missing CSRF token",
    "404": "No such thing, or the console is off",
    "429": "Too many refused admin keys from this address",
}


def _operation(route: ApiRoute) -> S:
    op: S = {
        "operationId": f"{route.method.lower()}_{route.pattern.strip('/').replace('/', '_').replace('{', '').replace('}', '').replace('-', '_').replace('.', '_')}",
        "summary": route.summary,
        "tags": [route.tag],
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}
        for name in route.path_params
    ]
    parameters += [
        {"name": p.name, "in": "query", "required": False, "description": p.description, "schema": p.schema}
        for p in route.query
    ]
    if parameters:
        op["parameters"] = parameters
    if route.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{route.body}"}}},
        }
    schema: S = {"$ref": f"#/components/schemas/{route.response}"} if route.response else {"type": "object"}
    content: S = {"application/json": {"schema": schema}}
    if "text/csv" in route.produces:
        content["text/csv"] = {"schema": {"type": "string"}}
    responses: S = {str(route.status): {"description": "OK", "content": content}}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    for code, text in ERRORS.items():
        responses[code] = {"description": text, "content": error}
    op["responses"] = responses
    if route.signin:
        op["security"] = [{"adminKey": []}]
    return op


def describe(routes: tuple[ApiRoute, ...]) -> S:
    paths: S = {}
    for route in routes:
        paths.setdefault("/admin/api" + route.pattern, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "gemgate admin API",
            "version": "1",
            "description": (
                "Keys, channels, usage and the request log of a gemgate gateway. Send the "
                "admin key as 'Authorization: Bearer KEY', or sign in (POST /admin/api/session) "
                f"and send the session cookie, plus the CSRF token in '{CSRF_HEADER}' on every "
                "POST. Money is integer nano-USD (cost_nanos) and a USD string (cost_usd)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "adminKey": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "gemgate_session"},
                "csrf": {"type": "apiKey", "in": "header", "name": CSRF_HEADER},
            },
        },
        "security": [{"adminKey": []}, {"session": [], "csrf": []}],
    }
