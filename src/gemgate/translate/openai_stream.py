"""Streams: Gemini chunks -> OpenAI chat.completion.chunk (door side) and back (provider side).

Both are incremental: text is passed on in the event that carries it, never accumulated.
Only streamed tool-call arguments are gathered (OpenAI sends them in fragments) until the
choice finishes, because a Gemini functionCall carries its arguments whole. The decoder
also holds a finishing chunk for one event, so that the usage OpenAI sends right after the
finish rides on the same Gemini chunk (Google puts finishReason and final usage together).
"""

from __future__ import annotations

from typing import Any

from gemgate.translate.openai_common import (
    finish_to_gemini,
    finish_to_openai,
    logprobs_to_gemini,
    logprobs_to_openai,
    usage_to_gemini,
    usage_to_openai,
)
from gemgate.translate.openai_response import (
    MessageParts,
    function_call_part,
    image_parts,
    parse_arguments,
)


class ChatStreamEncoder:
    """Gemini stream chunks -> OpenAI chat.completion.chunk dicts (the door adds ``[DONE]``)."""

    def __init__(
        self,
        model: str,
        request_id: str,
        created: int,
        include_usage: bool = False,
        *,
        signed_ids: bool = True,
        thought_tag: str | None = None,
    ) -> None:
        self.signed_ids = signed_ids  # see MessageParts
        self.thought_tag = thought_tag  # thoughts in the content between these tags
        self._open_tags: set[int] = set()  # candidates whose thought tag is open
        self.model = model
        self.request_id = request_id
        self.created = created
        self.include_usage = include_usage
        self._started: set[int] = set()
        self._calls: dict[int, int] = {}  # candidate index -> tool calls emitted so far
        self._finished: set[int] = set()
        self._usage: dict[str, Any] | None = None

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.request_id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        meta = chunk.get("usageMetadata")
        if isinstance(meta, dict):
            self._usage = meta
        out: list[dict[str, Any]] = []
        candidates = chunk.get("candidates")
        if not candidates:
            feedback = chunk.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason") and not self._started:
                self._started.add(0)
                self._finished.add(0)
                blocked = {"role": "assistant", "content": ""}
                out.append(self._chunk([_choice(0, blocked, "content_filter", None)]))
            return out
        for pos, cand in enumerate(candidates):
            if not isinstance(cand, dict):
                continue
            index = cand.get("index", pos)
            pieces = MessageParts(signed_ids=self.signed_ids)
            content = cand.get("content")
            if isinstance(content, dict):
                pieces.add(content.get("parts"))
            delta: dict[str, Any] = {}
            if index not in self._started:
                delta["role"] = "assistant"
            if self.thought_tag:
                text = self._tagged(index, pieces, bool(cand.get("finishReason")))
                if text:
                    delta["content"] = text
            else:
                if pieces.texts:
                    delta["content"] = "".join(pieces.texts)
                if pieces.thoughts:
                    delta["reasoning_content"] = "".join(pieces.thoughts)
            if pieces.calls:
                first = self._calls.get(index, 0)
                delta["tool_calls"] = [
                    {"index": first + k, **call} for k, call in enumerate(pieces.calls)
                ]
                self._calls[index] = first + len(pieces.calls)
            if pieces.images:
                delta["images"] = pieces.images
            reason = cand.get("finishReason")
            finish = None
            if reason and index not in self._finished:
                finish = finish_to_openai(reason, has_calls=self._calls.get(index, 0) > 0)
                self._finished.add(index)
            lp = cand.get("logprobsResult")
            logprobs = logprobs_to_openai(lp) if isinstance(lp, dict) else None
            if len(delta) == (1 if "role" in delta else 0) and finish is None and logprobs is None:
                continue  # nothing new for this candidate
            if "role" in delta:
                self._started.add(index)
                if len(delta) == 1:
                    delta["content"] = ""
            out.append(self._chunk([_choice(index, delta, finish, logprobs)]))
        return out

    def _tagged(self, index: int, pieces: MessageParts, finishing: bool) -> str:
        """This chunk's content with its thoughts inside the thought tag."""
        tag = self.thought_tag
        out: list[str] = []
        if pieces.thoughts:
            if index not in self._open_tags:
                out.append(f"<{tag}>")
                self._open_tags.add(index)
            out.extend(pieces.thoughts)
        if index in self._open_tags and (pieces.texts or finishing):
            out.append(f"</{tag}>")
            self._open_tags.discard(index)
        out.extend(pieces.texts)
        return "".join(out)

    def finish(self, usage_metadata: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """The closing usage chunk (``choices: []``) when the client asked for usage.

        ``usage_metadata`` overrides the last usage seen (e.g. a locally counted estimate).
        """
        meta = usage_metadata if usage_metadata is not None else self._usage
        if not self.include_usage or meta is None:
            return []
        chunk = self._chunk([])
        chunk["usage"] = usage_to_openai(meta)
        return [chunk]


def _choice(
    index: int, delta: dict[str, Any], finish: str | None, logprobs: dict[str, Any] | None
) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}


class _PendingCall:
    __slots__ = ("extra", "fragments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.fragments: list[str] = []
        self.extra: Any = None


class ChatStreamDecoder:
    """OpenAI chat.completion.chunk dicts -> Gemini stream chunk dicts (provider side)."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[int, _PendingCall]] = {}
        self._response_id: str | None = None
        self._model: str | None = None
        self._held: dict[str, Any] | None = None

    def _wrap(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._model:
            body["modelVersion"] = self._model
        if self._response_id:
            body["responseId"] = self._response_id
        return body

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        if isinstance(chunk.get("id"), str):
            self._response_id = chunk["id"]
        if isinstance(chunk.get("model"), str):
            self._model = chunk["model"]
        candidates: list[dict[str, Any]] = []
        for pos, choice in enumerate(chunk.get("choices") or []):
            if not isinstance(choice, dict):
                continue
            cand = self._choice(choice, pos)
            if cand is not None:
                candidates.append(cand)
        usage = chunk.get("usage")
        meta = usage_to_gemini(usage) if isinstance(usage, dict) else None
        out: list[dict[str, Any]] = []
        held, self._held = self._held, None
        if held is not None:
            if meta is not None and not candidates:
                # The usage event right after the finish: one Gemini chunk, as Google sends.
                held["usageMetadata"] = meta
                return [held]
            out.append(held)
        body: dict[str, Any] = {}
        if candidates:
            body["candidates"] = candidates
        if meta is not None:
            body["usageMetadata"] = meta
        if not body:
            return out
        body = self._wrap(body)
        if meta is None and any("finishReason" in c for c in candidates):
            self._held = body  # wait one event for the usage that follows a finish
        else:
            out.append(body)
        return out

    def _choice(self, choice: dict[str, Any], pos: int) -> dict[str, Any] | None:
        index = choice.get("index", pos)
        raw_delta = choice.get("delta")
        delta: dict[str, Any] = raw_delta if isinstance(raw_delta, dict) else {}
        parts: list[dict[str, Any]] = []
        reasoning = delta.get("reasoning_content", delta.get("reasoning"))
        if isinstance(reasoning, str) and reasoning:
            parts.append({"text": reasoning, "thought": True})
        content = delta.get("content")
        if isinstance(content, str) and content:
            parts.append({"text": content})
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            parts.append({"text": refusal})
        parts.extend(image_parts(delta.get("images")))
        tool_calls = delta.get("tool_calls")
        if isinstance(tool_calls, list):
            self._gather(index, tool_calls)
        finish = choice.get("finish_reason")
        reason = finish_to_gemini(finish)
        if reason is not None:
            flushed, malformed = self._flush(index)
            parts.extend(flushed)
            if malformed:
                reason = "MALFORMED_FUNCTION_CALL"
        lp = choice.get("logprobs")
        logprobs = logprobs_to_gemini(lp) if isinstance(lp, dict) else None
        if not parts and reason is None and logprobs is None:
            return None
        cand: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": index}
        if reason is not None:
            cand["finishReason"] = reason
        if logprobs is not None:
            cand["logprobsResult"] = logprobs
        return cand

    def _gather(self, index: int, tool_calls: list[Any]) -> None:
        pending = self._calls.setdefault(index, {})
        for pos, tc in enumerate(tool_calls):
            if not isinstance(tc, dict):
                continue
            slot = tc.get("index", pos)
            call = pending.get(slot)
            if call is None:
                call = pending[slot] = _PendingCall()
            if isinstance(tc.get("id"), str) and tc["id"]:
                call.id = tc["id"]
            if tc.get("extra_content") is not None:
                call.extra = tc["extra_content"]
            fn = tc.get("function")
            if isinstance(fn, dict):
                name = fn.get("name")
                if isinstance(name, str) and name and not call.name:
                    call.name = name
                args = fn.get("arguments")
                if isinstance(args, str) and args:
                    call.fragments.append(args)

    def _flush(self, index: int) -> tuple[list[dict[str, Any]], bool]:
        pending = self._calls.pop(index, None)
        if not pending:
            return [], False
        parts: list[dict[str, Any]] = []
        malformed = False
        for slot in sorted(pending, key=lambda s: s if isinstance(s, int) else 0):
            call = pending[slot]
            args = parse_arguments("".join(call.fragments))
            if args is None or not call.name:
                malformed = True
                continue
            parts.append(function_call_part(call.id, call.name, args, call.extra))
        return parts, malformed

    def finish(self) -> list[dict[str, Any]]:
        """What is still held: the last finished chunk, and tool calls of choices that never
        reported a finish reason (a truncated stream)."""
        out: list[dict[str, Any]] = []
        if self._held is not None:
            out.append(self._held)
            self._held = None
        candidates: list[dict[str, Any]] = []
        for index in sorted(self._calls):
            parts, _malformed = self._flush(index)
            if parts:
                candidates.append({"content": {"role": "model", "parts": parts}, "index": index})
        if candidates:
            out.append(self._wrap({"candidates": candidates}))
        return out
