"""Admission: the ledger can record, the key's rate limit allows, and its budget pays for
the request's worst case.

The worst case is the prompt at the model's highest input rate plus the output bound
(``maxOutputTokens``, or the model's output limit, times ``candidateCount``) at its highest
output rate. The prompt is first bounded without tokenizing (the body's size bounds a
media-free prompt for any tokenizer; media by Google's media rules); only a request whose
bound does not fit is counted exactly, off the event loop when it is large.
"""

from __future__ import annotations

from typing import Any, Protocol

from gemgate.billing import worst_case_nanos
from gemgate.errors import ResourceExhausted
from gemgate.limits.memory import Reservation
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.route import Route
from gemgate.pipeline.settle import Budgets
from gemgate.store.keys import KeyRecord
from gemgate.tokens import (
    TURN_OVERHEAD,
    References,
    TokenCounter,
    can_count_inline,
    reference_bound,
)


class RateLimiter(Protocol):
    async def check(self, key: KeyRecord) -> None: ...


class Ledger(Protocol):
    def check_available(self) -> None:
        """Raise Unavailable while usage records cannot be committed."""
        ...


def has_media(request: dict[str, Any]) -> bool:
    system = request.get("systemInstruction")
    for content in (*(request.get("contents") or ()), *((system,) if system else ())):
        for part in content.get("parts") or ():
            if "inlineData" in part or "fileData" in part:
                return True
    return False


def with_references(inline: int, referenced: int, input_limit: int) -> int:
    """A prompt's bound: its inline part plus what it names by reference, which the
    upstream caps at the model's input limit."""
    return min(inline + referenced, max(inline, input_limit))


def embed_prompt(request: dict[str, Any]) -> dict[str, Any]:
    """The contents an embedding request sends, as a request the counter can count."""
    if "requests" in request:
        return {"contents": [r.get("content") or {} for r in request["requests"]]}
    return {"contents": [request.get("content") or {}]}


class Admission:
    def __init__(
        self,
        *,
        budgets: Budgets,
        counter: TokenCounter,
        limiter: RateLimiter | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.budgets = budgets
        self.counter = counter
        self.limiter = limiter
        self.ledger = ledger

    async def prompt_tokens(self, request: dict[str, Any]) -> int:
        if can_count_inline(request):
            return self.counter.count_request(request).total
        return (await self.counter.count_request_async(request)).total

    def prompt_bound(
        self, request: dict[str, Any], client_bytes: int, media: bool | None = None
    ) -> int:
        """An upper bound of the prompt's tokens for any tokenizer (``media``: whether the
        request has media parts, when the caller knows).

        Without media every prompt token comes from text or JSON in the client's body, and
        no token is shorter than a byte, so the body's size bounds them at no cost.
        """
        if media is None:
            media = has_media(request)
        if client_bytes and not media:
            turns = len(request.get("contents") or ()) + 1
            return client_bytes + TURN_OVERHEAD * turns
        return self.counter.bound_request(request).total

    async def admit(
        self,
        ctx: RequestContext,
        route: Route,
        request: dict[str, Any],
        *,
        max_output: int | None,
        client_bytes: int = 0,
        references: References | None = None,
    ) -> Reservation | None:
        if self.ledger is not None:
            # Fail closed: a request whose record could not be kept is never sent upstream.
            self.ledger.check_available()
        key = ctx.key
        if key is None or ctx.batch is not None:
            # A batch's items are paid from the reservation made when the batch was created.
            return None
        if key.rpm and self.limiter is not None:
            await self.limiter.check(key)
        if key.budget_nanos is None:
            return None
        if max_output is None:
            cfg = request.get("generationConfig") or {}
            max_output = cfg.get("maxOutputTokens") or route.info.output_token_limit
            max_output *= cfg.get("candidateCount") or 1
        # Content by reference (fileData, cachedContent) is billed by the upstream at its
        # full size: known for what the gateway holds, else bounded by the input limit.
        limit = route.info.input_token_limit
        media = has_media(request)  # fileData parts are media
        by_reference = media or bool(request.get("cachedContent"))
        referenced = reference_bound(request, limit, references) if by_reference else 0
        bound = with_references(self.prompt_bound(request, client_bytes, media), referenced, limit)
        try:
            return await self.budgets.reserve(key, worst_case_nanos(bound, max_output, route.reserve_price(request)))
        except ResourceExhausted:
            prompt = with_references(await self.prompt_tokens(request), referenced, limit)
            if prompt >= bound:
                raise
        return await self.budgets.reserve(key, worst_case_nanos(prompt, max_output, route.reserve_price(request)))
