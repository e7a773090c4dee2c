"""Anthropic's error envelope: ``{"type": "error", "error": {"type", "message"}}``, with the
HTTP statuses Anthropic's clients expect (401 for a bad key, 529 when overloaded)."""

from __future__ import annotations

from typing import Any

from gemgate.errors import (
    ApiKeyInvalid,
    GatewayError,
    NotFound,
    PayloadTooLarge,
    Unauthenticated,
    Unavailable,
)

OVERLOADED = 529
# (HTTP status, error type) by the gateway's reason, where it decides.
_BY_REASON: dict[str, tuple[int, str]] = {
    "API_KEY_INVALID": (401, "authentication_error"),
    "API_KEY_MISSING": (401, "authentication_error"),
    "BUDGET_EXHAUSTED": (429, "rate_limit_error"),
}
_BY_STATUS: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
}


def anthropic_status(err: GatewayError) -> int:
    mapped = _BY_REASON.get(err.reason or "")
    if mapped is not None:
        return mapped[0]
    if isinstance(err, ApiKeyInvalid | Unauthenticated):
        return 401
    if isinstance(err, Unavailable):
        return OVERLOADED
    return err.code


def anthropic_error_type(err: GatewayError) -> str:
    mapped = _BY_REASON.get(err.reason or "")
    if mapped is not None:
        return mapped[1]
    if isinstance(err, PayloadTooLarge):
        return "request_too_large"
    if isinstance(err, Unavailable):
        return "overloaded_error"
    status = anthropic_status(err)
    if status >= 500:
        return "api_error"
    return _BY_STATUS.get(status, "invalid_request_error")


def anthropic_error_body(err: GatewayError) -> dict[str, Any]:
    message = err.message
    if isinstance(err, ApiKeyInvalid):
        message = "invalid x-api-key"
    elif isinstance(err, NotFound) and "model" in err.metadata:
        message = f"model: {err.metadata['model']}"
    return {"type": "error", "error": {"type": anthropic_error_type(err), "message": message}}
