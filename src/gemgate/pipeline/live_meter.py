"""Billing a Live session relayed to an upstream that reports its own usage.

Google's Live API reports usage in ``usageMetadata`` frames, one per model turn, carried
with (or right after) the ``turnComplete`` of that turn. Each frame is that turn's usage
alone, not a running total of the session: ``responseTokenCount`` is what that turn
generated, and ``promptTokenCount`` is everything that turn read, which grows turn by turn
because every turn re-reads the conversation so far (and is billed for it, as Google
bills it). So each ``usageMetadata`` frame is one billed unit: one usage record, committed
before the frame is passed to the client, and the frame is never billed again.

Budgets and rate limits are held as the session runs, through the same admission objects
as every request: a turn opens at the first client input after the previous turn was
billed, and opening it checks that the ledger can record, that the key's rate limit
allows one more request, and reserves the turn's worst case (the context it re-reads,
bounded by the last turn's prompt plus its response, plus what the client sends, plus the
output bound); further input in the same turn reserves what it adds. A refusal ends the
session (the caller sends ``goAway``). A session cut off mid-turn (client gone, upstream
broken) is billed for what was relayed, counted locally, and flagged interrupted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from gemgate.billing import worst_case_nanos
from gemgate.limits.memory import Reservation
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.meter import Metered, meter
from gemgate.pipeline.route import Route
from gemgate.pipeline.serve import Serve
from gemgate.pipeline.settle import Outcome
from gemgate.tokens import TURN_OVERHEAD

log = logging.getLogger("gemgate.live")

# Further input in an open turn is reserved in steps of at least this many tokens, so an
# audio stream does not make a reservation per frame.
RESERVE_STEP_TOKENS = 4096


@dataclass(slots=True)
class _Turn:
    ctx: RequestContext
    reservations: list[Reservation] = field(default_factory=list)
    reserved_input: int = 0  # input tokens the reservations cover
    input_bound: int = 0  # bound of what the client sent in this turn
    input_media: int = 0  # of which media (counted by Google's media rules)
    input_text: list[str] = field(default_factory=list)
    output_tokens: dict[str, int] = field(default_factory=dict)  # modality -> relayed tokens


class LiveMeter:
    def __init__(
        self,
        serve: Serve,
        base: RequestContext,
        route: Route,
        *,
        carry: int,
        max_output: int,
    ) -> None:
        self._serve = serve
        self._base = base
        self._route = route
        self._carry = carry  # tokens the next turn re-reads (bound)
        self._max_output = max_output
        self._turn: _Turn | None = None
        self._first = True
        self.records = 0

    # --- the turn ------------------------------------------------------------------------

    def _context(self) -> RequestContext:
        base = self._base
        ctx = RequestContext(door=base.door, method=base.method, client_ip=base.client_ip)
        ctx.key, ctx.route, ctx.channel, ctx.upstream_key = base.key, base.route, base.channel, base.upstream_key
        ctx.streamed = True
        if self._first:  # the attempts that opened the session go on its first record
            ctx.attempts = base.attempts
            self._first = False
        return ctx

    async def _reserve(self, turn: _Turn, prompt: int, output: int) -> None:
        key = turn.ctx.key
        if key is None or key.budget_nanos is None:
            return
        nanos = worst_case_nanos(prompt, output, self._route.price)
        turn.reservations.append(await self._serve.admission.budgets.reserve(key, nanos))

    async def client_input(self, request: dict[str, Any]) -> None:
        """Before a client frame (as a canonical ``{"contents": [...]}``) goes upstream:
        open a turn, or reserve what the frame adds to the open one. Raises the refusal
        (ledger down, rate limited, budget spent)."""
        counted = self._serve.counter.bound_request(request)
        media = counted.total - counted.by_modality.get("TEXT", 0)
        turn = self._turn
        if turn is None:
            turn = await self._open(counted.total, check=True)
        elif turn.input_bound + counted.total > turn.reserved_input:
            step = max(counted.total, RESERVE_STEP_TOKENS)
            await self._reserve(turn, step, 0)
            turn.reserved_input += step
        turn.input_bound += counted.total
        turn.input_media += media
        for content in request.get("contents") or ():
            for part in content.get("parts") or ():
                text = part.get("text") if isinstance(part, dict) else None
                if isinstance(text, str):
                    turn.input_text.append(text)

    async def _open(self, input_bound: int, *, check: bool) -> _Turn:
        admission = self._serve.admission
        turn = _Turn(self._context())
        key = turn.ctx.key
        if check:
            if admission.ledger is not None:
                admission.ledger.check_available()
            if key is not None and key.rpm and admission.limiter is not None:
                await admission.limiter.check(key)
        prompt = self._carry + input_bound + TURN_OVERHEAD
        await self._reserve(turn, prompt, self._max_output)
        turn.reserved_input = input_bound + TURN_OVERHEAD
        self._turn = turn
        return turn

    async def model_output(self, content: dict[str, Any]) -> None:
        """A relayed ``modelTurn`` (counted only in case the turn is cut short)."""
        turn = self._turn
        if turn is None:  # the model spoke first (proactive audio): bill it all the same
            try:
                turn = await self._open(0, check=False)
            except Exception:
                turn = self._turn = _Turn(self._context())
        turn.ctx.mark_first_byte()
        counted = self._serve.counter.count_request({"contents": [content]})
        for modality, tokens in counted.by_modality.items():
            if tokens:
                turn.output_tokens[modality] = turn.output_tokens.get(modality, 0) + tokens

    # --- settling ------------------------------------------------------------------------

    async def usage(self, usage_metadata: dict[str, Any]) -> int:
        """The upstream's usage of one turn (canonical naming): commit its record; the
        cost in nano-USD."""
        turn = self._turn
        if turn is None:
            turn = _Turn(self._context())
        self._turn = None
        metered = meter(usage_metadata, self._route.price)
        u = metered.usage
        self._carry = u.prompt_total + u.output_text + u.output_image + u.output_audio + u.thoughts
        await self._settle(turn, metered, Outcome("ok"))
        return metered.cost_nanos

    async def cut_short(self, error: str) -> None:
        """The session ended mid-turn: bill what was relayed (nothing if nothing was)."""
        turn = self._turn
        self._turn = None
        if turn is None:
            return
        if not turn.output_tokens:
            await self._release(turn.reservations)
            return
        counter = self._serve.counter
        prompt_text = sum(counter.count_text(t) for t in turn.input_text)
        output = sum(turn.output_tokens.values())
        estimate: dict[str, Any] = {
            "promptTokenCount": self._carry + prompt_text + turn.input_media,
            "candidatesTokenCount": output,
            "candidatesTokensDetails": [
                {"modality": m, "tokenCount": n} for m, n in turn.output_tokens.items()
            ],
            "totalTokenCount": self._carry + prompt_text + turn.input_media + output,
        }
        metered = meter(estimate, self._route.price, estimated=True)
        await self._settle(turn, metered, Outcome("interrupted", 499, interrupted=True, error=error))

    async def _settle(self, turn: _Turn, metered: Metered, outcome: Outcome) -> None:
        first = turn.reservations[0] if turn.reservations else None
        if first is None and turn.ctx.key is not None and turn.ctx.key.budget_nanos is not None:
            first = Reservation(turn.ctx.key.id, 0)  # unreserved usage still counts as spent
        try:
            await self._serve.settler.settle(turn.ctx, first, metered, outcome)
            self.records += 1
        finally:
            await self._release(turn.reservations[1:])

    async def _release(self, reservations: list[Reservation]) -> None:
        for reservation in reservations:
            await self._serve.admission.budgets.settle(reservation, 0)
