"""A Live session the gateway runs itself, turn by turn, for models whose channels do not
speak Live (the built-in local model, OpenAI-compatible and Anthropic upstreams).

The conversation is kept here: each ``clientContent`` (or realtime text) adds the client's
turns, and a complete client turn starts a model turn, which is one streamed call through
the serve path (admitted, tried over the model's channels, metered and settled: one usage
record per turn, committed before the turn's last text and ``turnComplete`` are sent).
The answer goes out as ``serverContent.modelTurn`` text parts, then ``generationComplete``,
then ``turnComplete`` with the turn's ``usageMetadata`` (Live naming:
``responseTokenCount``). New client content during a model turn interrupts it, as Google's
does: the turn is billed for what it generated (flagged interrupted), the client gets
``serverContent.interrupted``, and what was said stays in the conversation.

A setup the model cannot serve (audio or image output) is refused before
``setupComplete``; audio or video input to a model that takes none, and tool responses to a
model that was given no tools, are refused with Google's invalid-argument close (1007).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

from gemgate.doors import gemini_live as codec
from gemgate.errors import GatewayError, InvalidArgument, NotFound
from gemgate.pipeline.context import RequestContext
from gemgate.pipeline.live_session import LiveSession, ends_session
from gemgate.types.canonical import CanonicalRequest, Chunk

log = logging.getLogger("gemgate.live")

_MODALITY_OF = {"audio": "AUDIO", "video": "VIDEO", "image": "IMAGE"}


@dataclass(slots=True)
class _End:
    how: str  # client | refused | error | idle
    error: BaseException | None = None
    reason: str = ""


def check_setup(session: LiveSession, setup: codec.LiveSetup) -> None:
    route, model = session.route, session.route.model_id
    version = "v1beta"
    if not route.channels or not route.info.supports("generateContent"):
        raise NotFound(
            f"models/{model} is not found for API version {version}, or is not supported "
            "for bidiGenerateContent. Call ListModels to see the list of available models "
            "and their supported methods.",
            metadata={"model": model},
        )
    for modality in setup.modalities:
        if modality not in route.info.output_modalities:
            can = ", ".join(route.info.output_modalities)
            raise InvalidArgument.field(
                "setup.generationConfig.responseModalities",
                f"model {model} cannot answer in {modality}; it answers in {can}",
            )


class _Turns:
    def __init__(self, session: LiveSession, setup: codec.LiveSetup) -> None:
        self.session = session
        self.setup = setup
        self.history: list[dict[str, Any]] = []
        self.pending_media: list[dict[str, Any]] = []
        self.task: asyncio.Task[None] | None = None
        self.sent: list[str] = []  # text sent in the running turn
        self.ended: asyncio.Future[_End] = asyncio.get_running_loop().create_future()

    def _end(self, end: _End) -> None:
        if not self.ended.done():
            self.ended.set_result(end)

    # --- client frames -------------------------------------------------------------------

    async def read(self) -> _End:
        ws = self.session.ws
        while True:
            data = await ws.receive()
            if data is None:
                return _End("client")
            self.session.touch()
            try:
                await self._client_frame(data)
            except GatewayError as exc:
                return _End("error", exc)

    async def _client_frame(self, data: str | bytes) -> None:
        turn = codec.read_turn(codec.parse_frame(data))
        info, model = self.session.route.info, self.session.route.model_id
        if turn.kind == "tool_response":
            if not self.setup.tools:
                raise InvalidArgument.field("toolResponse", f"the session gave model {model} no tools")
            raise InvalidArgument.field("toolResponse", f"model {model} does not call tools in Live sessions")
        for mime in turn.media:
            modality = _MODALITY_OF.get(mime.split("/", 1)[0].lower(), "DOCUMENT")
            if modality not in info.input_modalities:
                raise InvalidArgument(
                    f"The {modality.lower()} content type (CONTENT_TYPE_{modality}) is not "
                    f"supported for model {model}: it takes {', '.join(info.input_modalities)}."
                )
        if turn.contents:
            await self._interrupt()
            self.history.extend(turn.contents)
        if turn.complete:
            self._start()

    # --- model turns ---------------------------------------------------------------------

    def _start(self) -> None:
        if self.task is not None and not self.task.done():
            return
        self.sent = []
        self.session.busy = True
        self.task = asyncio.get_running_loop().create_task(self._turn(list(self.history)))

    async def _interrupt(self) -> None:
        task = self.task
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self._remember()
        await self.session.ws.send_text(codec.interrupted())

    def _remember(self) -> None:
        if self.sent:
            self.history.append({"role": "model", "parts": [{"text": "".join(self.sent)}]})
            self.sent = []

    def _request(self, contents: list[dict[str, Any]]) -> CanonicalRequest:
        body: dict[str, Any] = {"contents": contents}
        if self.setup.system is not None:
            body["systemInstruction"] = self.setup.system
        if self.setup.tools:
            body["tools"] = self.setup.tools
        if self.setup.generation:
            body["generationConfig"] = self.setup.generation
        return CanonicalRequest(model=self.session.route.model_id, method="streamGenerateContent", body=body)

    async def _turn(self, contents: list[dict[str, Any]]) -> None:
        session = self.session
        base = session.base
        ctx = RequestContext(door=base.door, method=base.method, client_ip=base.client_ip)
        ctx.key, ctx.route = base.key, session.route
        chunks = session.serve.stream(ctx, session.route, self._request(contents))
        usage: dict[str, Any] | None = None
        try:
            async for chunk in chunks:
                text = _answer_text(chunk)
                if text:
                    self.sent.append(text)
                    await session.ws.send_text(codec.model_text(text))
                    session.touch()
                usage = chunk.usage or usage
            # The stream has ended: its usage record is committed.
            await session.ws.send_text(codec.generation_complete())
            await session.ws.send_text(codec.turn_complete(usage))
            self._remember()
            session.touch()
        except asyncio.CancelledError:
            raise
        except GatewayError as exc:
            self._end(_End("refused" if ends_session(exc) else "error", exc))
        except Exception as exc:
            log.error("live turn %s failed", ctx.request_id, exc_info=exc)
            self._end(_End("error", exc))
        finally:
            session.busy = False
            session.touch()
            await chunks.aclose()

    async def stop(self) -> None:
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _answer_text(chunk: Chunk) -> str:
    data = chunk.json()
    out = []
    for cand in data.get("candidates") or ():
        content = cand.get("content") if isinstance(cand, dict) else None
        for part in (content or {}).get("parts") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str) and not part.get("thought"):
                out.append(part["text"])
    return "".join(out)


async def run(session: LiveSession) -> None:
    setup = codec.canonical_setup(session.setup)
    check_setup(session, setup)
    await session.ws.send_text(codec.setup_complete())
    session.touch()
    turns = _Turns(session, setup)
    reader = asyncio.ensure_future(turns.read())
    idle = asyncio.ensure_future(session.watch())
    waits: set[asyncio.Future[Any]] = {reader, idle, turns.ended}
    try:
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reader.cancel()
        idle.cancel()
        await asyncio.gather(reader, idle, return_exceptions=True)
        await turns.stop()
    if turns.ended.done():
        end = turns.ended.result()
    elif idle in done and not idle.cancelled():
        end = _End("idle", reason=idle.result())
    else:
        end = reader.result() if reader.exception() is None else _End("error", reader.exception())
    if end.how == "client":
        return
    if end.how in ("refused", "idle"):
        reason = end.reason or (end.error.message if isinstance(end.error, GatewayError) else "")
        await session.go_away(reason)
        return
    await session.refuse(end.error or RuntimeError("session failed"))
