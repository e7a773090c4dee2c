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
    ├── ResourceExhausted             429 RESOURCE_EXHAUSTED rate limit (QuotaFailure, RetryInfo)
    │   └── BudgetExhausted           402 RESOURCE_EXHAUSTED the key's budget is spent: do not retry
    ├── Internal                      500 INTERNAL
    ├── NotImplementedYet             501 UNIMPLEMENTED
    └── UpstreamError                 an upstream could not answer (the attempt loop may
        │                             try another channel or upstream key)
        ├── BadGateway                502 UNAVAILABLE
        │   ├── UpstreamUnreachable   502 UNAVAILABLE        no connection, or it broke before an answer
        │   └── CredentialRejected    502 UNAVAILABLE        the gateway's upstream key refused
        ├── Unavailable               503 UNAVAILABLE
        ├── DeadlineExceeded          504 DEADLINE_EXCEEDED
        └── UpstreamRateLimited       429 RESOURCE_EXHAUSTED the upstream's 429, Retry-After kept

An upstream's own 4xx answer (its validation of a request we forwarded) is passed on with
its code and status but with the message scrubbed of anything that could identify the
upstream credentials, and with only the details that are about the client's request, every
string in them scrubbed too: see :func:`upstream_error`.

A spent budget is Google's answer for used-up prepaid credit (402 RESOURCE_EXHAUSTED): no
client retries it. A rate limit is 429 with ``Retry-After`` and a ``RetryInfo`` detail:
clients wait that long and retry.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

ERROR_INFO = "type.googleapis.com/google.rpc.ErrorInfo"
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"
QUOTA_FAILURE = "type.googleapis.com/google.rpc.QuotaFailure"
HELP = "type.googleapis.com/google.rpc.Help"
LOCALIZED_MESSAGE = "type.googleapis.com/google.rpc.LocalizedMessage"
PRECONDITION_FAILURE = "type.googleapis.com/google.rpc.PreconditionFailure"
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
        """Google's form: a QuotaFailure naming the limit and, when the client may retry, a
        RetryInfo saying when (beside the ``Retry-After`` header)."""
        details: list[dict[str, Any]] = [
            {"@type": QUOTA_FAILURE, "violations": [{"subject": subject, "description": description}]}
        ]
        if retry_after is not None:
            details.append({"@type": RETRY_INFO, "retryDelay": f"{max(1, retry_after)}s"})
        return cls(description, reason=reason, details=details, retry_after=retry_after)


class BudgetExhausted(ResourceExhausted):
    """The key's budget cannot cover the request: like Google's used-up prepaid credit,
    402 RESOURCE_EXHAUSTED, which clients do not retry (it cannot succeed before a top-up).
    ``x-should-retry: false`` says the same to clients that read it (OpenAI's SDK)."""

    code = 402

    def headers(self) -> list[tuple[bytes, bytes]]:
        return [*super().headers(), (b"x-should-retry", b"false")]


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


class UpstreamUnreachable(BadGateway):
    """No connection could be made (refused, reset, connect timeout), or it broke before
    any answer: another channel may be tried."""


class CredentialRejected(BadGateway):
    """The upstream refused the gateway's own credential (401, 403, or Google's 400
    API_KEY_INVALID): the key is set aside, and the client is told nothing about it."""


class UpstreamRateLimited(UpstreamError):
    """The upstream answered 429: the key rests for ``retry_after`` seconds (when the
    upstream said), and another key or channel may answer instead."""

    code = 429
    status = "RESOURCE_EXHAUSTED"
    reason = "UPSTREAM_RATE_LIMITED"


class UpstreamRejected(GatewayError):
    """An upstream's own client-error answer, relayed with its code and status."""

    def __init__(self, code: int, status: str, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message, details=details)
        self.code = code
        self.status = status


class LiveRefused(GatewayError):
    """An upstream Live session closed with a client-error close frame (a bad setup, a model
    it does not serve for Live): relayed with that frame's code and reason (scrubbed)."""

    code = 400
    status = "INVALID_ARGUMENT"

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code


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


# Detail types an upstream may tell about the client's own request; any other (DebugInfo,
# the upstream's ErrorInfo, RequestInfo, ResourceInfo, ...) is about the upstream and dropped.
_CLIENT_DETAILS = frozenset(
    {BAD_REQUEST, QUOTA_FAILURE, RETRY_INFO, HELP, LOCALIZED_MESSAGE, PRECONDITION_FAILURE}
)
_SCRUB_DEPTH = 16


def _scrubbed(value: Any, secrets: tuple[str, ...], depth: int = 0) -> Any:
    """``value`` with every string in it (keys too) scrubbed; nesting beyond a sane depth
    is dropped."""
    if isinstance(value, str):
        return scrub(value, secrets)
    if depth >= _SCRUB_DEPTH:
        return None
    if isinstance(value, dict):
        return {scrub(str(k), secrets): _scrubbed(v, secrets, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrubbed(v, secrets, depth + 1) for v in value]
    return value


def client_details(details: list[dict[str, Any]], secrets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The details of an upstream error that a client may see: only the kinds about its
    request, every string in them scrubbed of credentials."""
    return [
        _scrubbed(d, secrets) for d in details if d.get("@type") in _CLIENT_DETAILS
    ]


def retry_delay_seconds(details: list[dict[str, Any]]) -> int | None:
    """The whole seconds of a ``google.rpc.RetryInfo`` detail's ``retryDelay`` ("12s",
    "0.5s"), rounded up; None when there is none."""
    for detail in details:
        if detail.get("@type") == RETRY_INFO:
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                try:
                    return max(0, math.ceil(float(delay[:-1])))
                except ValueError:
                    return None
    return None


def upstream_error(
    http_status: int,
    body: Any,
    *,
    provider: str,
    secrets: tuple[str, ...] = (),
    retry_after: int | None = None,
) -> GatewayError:
    """Map an upstream's failed answer to the error a client should see.

    Client errors (the upstream judged the forwarded request) keep their code and status;
    authentication failures of the gateway's own upstream credential, and every 5xx, become
    the gateway's upstream errors so the client never learns about the upstream key.
    ``retry_after`` is the upstream's ``Retry-After`` header in seconds, when it sent one.
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
    if http_status in (401, 403) or _names_invalid_key(details):
        return CredentialRejected(f"Upstream '{provider}' refused the gateway's credentials.")
    if http_status == 429:
        kept = client_details(details, secrets)
        delay = retry_delay_seconds(kept)
        return UpstreamRateLimited(
            f"Upstream '{provider}' is rate limiting: {message or 'quota exceeded'}",
            details=kept,
            retry_after=delay if delay is not None else retry_after,
        )
    if 400 <= http_status < 500:
        return UpstreamRejected(
            http_status,
            status or _STATUS_BY_CODE.get(http_status, "FAILED_PRECONDITION"),
            message or f"Upstream '{provider}' rejected the request.",
            client_details(details, secrets),
        )
    if http_status == 504:
        return DeadlineExceeded(f"Upstream '{provider}' timed out.")
    if http_status == 503:
        return Unavailable(f"Upstream '{provider}' is unavailable: {message or 'try again later'}")
    return BadGateway(f"Upstream '{provider}' failed with HTTP {http_status}.")


def _names_invalid_key(details: list[dict[str, Any]]) -> bool:
    """Google answers a bad API key with 400 and an ErrorInfo whose reason is
    API_KEY_INVALID: that is the gateway's credential failing, not the client's request."""
    return any(
        d.get("@type") == ERROR_INFO and d.get("reason") == "API_KEY_INVALID" for d in details
    )
