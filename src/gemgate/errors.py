"""The one error tree of the gateway.

Every stage that rejects a request raises a :class:`GatewayError`; the door that received
the request renders it in its own protocol's envelope (Google's or OpenAI's). Nothing else
is ever shown to a client: unexpected exceptions become :class:`Internal` with a request id
and no trace.

    GatewayError                      (code, status)
    ├── InvalidArgument               400 INVALID_ARGUMENT  bad JSON, field, value, part
    │   ├── ApiKeyInvalid             400 INVALID_ARGUMENT  reason API_KEY_INVALID
    │   └── PayloadTooLarge           413 INVALID_ARGUMENT
    ├── Unauthenticated               401 UNAUTHENTICATED   no admin key
    ├── PermissionDenied              403 PERMISSION_DENIED  no key, revoked, expired, model
    ├── NotFound                      404 NOT_FOUND          unknown model, method or path
    ├── MethodNotAllowed              405 INVALID_ARGUMENT
    ├── ResourceExhausted             429 RESOURCE_EXHAUSTED rate limit, budget (QuotaFailure)
    ├── Internal                      500 INTERNAL
    ├── NotImplementedYet             501 UNIMPLEMENTED
    └── UpstreamError                 the upstream failed after retries
        ├── BadGateway                502 UNAVAILABLE
        ├── Unavailable               503 UNAVAILABLE
        └── DeadlineExceeded          504 DEADLINE_EXCEEDED

An upstream's own 4xx answer (its validation of a request we forwarded) is passed on with
its code and status but with the message scrubbed of anything that could identify the
upstream credentials: see :func:`upstream_error`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
DOMAIN = "gemgate"


class GatewayError(Exception):
    code = 500
    status = "INTERNAL"
    reason: str | None = None

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        details: list[dict[str, Any]] | None = None,
        metadata: dict[str, str] | None = None,
        retry_after: int | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason
        self.details = list(details or ())
        self.metadata = metadata or {}
        self.retry_after = retry_after
        self.param = param  # the offending field, for doors that name it (OpenAI's "param")

    def google_details(self) -> list[dict[str, Any]]:
        details: list[dict[str, Any]] = []
        if self.reason:
            details.append(
                {"@type": ERROR_INFO, "reason": self.reason, "domain": DOMAIN, "metadata": self.metadata}
            )
        details.extend(self.details)
        return details

    def google_body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        details = self.google_details()
        if details:
            error["details"] = details
        return {"error": error}

    def headers(self) -> list[tuple[bytes, bytes]]:
        if self.retry_after is None:
            return []
        return [(b"retry-after", str(max(1, self.retry_after)).encode())]


class InvalidArgument(GatewayError):
    code = 400
    status = "INVALID_ARGUMENT"

    @classmethod
    def field(cls, path: str, description: str) -> InvalidArgument:
        """An error naming one field, with Google's BadRequest.fieldViolations detail."""
        return cls(
            f"Invalid value at '{path}': {description}" if path else description,
            details=[
                {"@type": BAD_REQUEST, "fieldViolations": [{"field": path, "description": description}]}
            ],
            param=path or None,
        )


class ApiKeyInvalid(InvalidArgument):
    reason = "API_KEY_INVALID"

    def __init__(self) -> None:
        super().__init__("API key not valid. Please pass a valid API key.")


class PayloadTooLarge(InvalidArgument):
    code = 413


class Unauthenticated(GatewayError):
    code = 401
    status = "UNAUTHENTICATED"


class PermissionDenied(GatewayError):
    code = 403
    status = "PERMISSION_DENIED"


class NotFound(GatewayError):
    code = 404
    status = "NOT_FOUND"


class MethodNotAllowed(GatewayError):
    code = 405
    status = "INVALID_ARGUMENT"


class ResourceExhausted(GatewayError):
    code = 429
    status = "RESOURCE_EXHAUSTED"

    @classmethod
    def quota(
        cls, subject: str, description: str, *, reason: str, retry_after: int | None = None
    ) -> ResourceExhausted:
        return cls(
            description,
            reason=reason,
            details=[
                {"@type": QUOTA_FAILURE, "violations": [{"subject": subject, "description": description}]}
            ],
            retry_after=retry_after,
        )


class Internal(GatewayError):
    code = 500
    status = "INTERNAL"


class NotImplementedYet(GatewayError):
    code = 501
    status = "UNIMPLEMENTED"


class UpstreamError(GatewayError):
    """The upstream could not give an answer."""


class BadGateway(UpstreamError):
    code = 502
    status = "UNAVAILABLE"


class Unavailable(UpstreamError):
    code = 503
    status = "UNAVAILABLE"


class DeadlineExceeded(UpstreamError):
    code = 504
    status = "DEADLINE_EXCEEDED"


class UpstreamRejected(GatewayError):
    """An upstream's own client-error answer, relayed with its code and status."""

    def __init__(self, code: int, status: str, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message, details=details)
        self.code = code
        self.status = status


def as_gateway_error(exc: BaseException, request_id: str) -> GatewayError:
    """What a client is told about ``exc``: itself if it is ours, else an INTERNAL error
    naming the request (the cause is logged, never shown)."""
    if isinstance(exc, GatewayError):
        return exc
    logging.getLogger("gemgate").error(
        "unexpected error in request %s", request_id, exc_info=exc
    )
    return Internal(f"Internal error. Request id {request_id}.")


_STATUS_BY_CODE = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
}
_KEYLIKE = re.compile(r"(AIza[0-9A-Za-z_\-]{10,}|sk-[0-9A-Za-z_\-]{10,}|key=[^&\s\"']+)")


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove anything that looks like a credential from a message shown to a client."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return _KEYLIKE.sub("[redacted]", text)


def upstream_error(
    http_status: int, body: Any, *, provider: str, secrets: tuple[str, ...] = ()
) -> GatewayError:
    """Map an upstream's failed answer to the error a client should see.

    Client errors (the upstream judged the forwarded request) keep their code and status;
    authentication failures of the gateway's own upstream credential, and every 5xx, become
    the gateway's upstream errors so the client never learns about the upstream key.
    """
    message = ""
    status = ""
    details: list[dict[str, Any]] = []
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            message = str(err.get("message") or "")
            status = str(err.get("status") or "")
            raw_details = err.get("details")
            if isinstance(raw_details, list):
                details = [d for d in raw_details if isinstance(d, dict)]
        elif isinstance(err, str):
            message = err
    message = scrub(message, secrets)
    if http_status in (401, 403):
        return BadGateway(f"Upstream '{provider}' refused the gateway's credentials.")
    if http_status == 429:
        return ResourceExhausted(
            f"Upstream '{provider}' is rate limiting: {message or 'quota exceeded'}",
            reason="UPSTREAM_RATE_LIMITED",
            details=[d for d in details if d.get("@type") != ERROR_INFO],
        )
    if 400 <= http_status < 500:
        return UpstreamRejected(
            http_status,
            status or _STATUS_BY_CODE.get(http_status, "FAILED_PRECONDITION"),
            message or f"Upstream '{provider}' rejected the request.",
            [d for d in details if d.get("@type") != ERROR_INFO],
        )
    if http_status == 504:
        return DeadlineExceeded(f"Upstream '{provider}' timed out.")
    if http_status == 503:
        return Unavailable(f"Upstream '{provider}' is unavailable: {message or 'try again later'}")
    return BadGateway(f"Upstream '{provider}' failed with HTTP {http_status}.")
