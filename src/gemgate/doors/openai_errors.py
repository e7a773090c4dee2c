"""OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""

from __future__ import annotations

from typing import Any

from gemgate.errors import ApiKeyInvalid, GatewayError

# (HTTP status, type, code) by the gateway's reason, where OpenAI's clients expect their own.
_BY_REASON: dict[str, tuple[int, str, str]] = {
    "API_KEY_INVALID": (401, "invalid_request_error", "invalid_api_key"),
    "API_KEY_MISSING": (401, "invalid_request_error", "missing_api_key"),
    "BUDGET_EXHAUSTED": (429, "insufficient_quota", "insufficient_quota"),
    "UPSTREAM_RATE_LIMITED": (429, "rate_limit_error", "rate_limit_exceeded"),
    "RATE_LIMIT_EXCEEDED": (429, "rate_limit_error", "rate_limit_exceeded"),
    "model_not_found": (404, "invalid_request_error", "model_not_found"),
    "previous_response_not_found": (404, "invalid_request_error", "previous_response_not_found"),
}
_BY_STATUS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "request_too_large"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


def openai_status(err: GatewayError) -> int:
    mapped = _BY_REASON.get(err.reason or "")
    if mapped is not None:
        return mapped[0]
    if isinstance(err, ApiKeyInvalid):
        return 401
    return err.code


def openai_error_body(err: GatewayError) -> dict[str, Any]:
    mapped = _BY_REASON.get(err.reason or "")
    if mapped is not None:
        _status, kind, code = mapped
        code_value: str | None = code
    elif err.code >= 500:
        kind, code_value = "server_error", err.status.lower()
    else:
        kind, code_value = _BY_STATUS.get(err.code, ("invalid_request_error", None))
        if err.reason and code_value is None:
            code_value = err.reason.lower()
    return {"error": {"message": err.message, "type": kind, "param": err.param, "code": code_value}}
