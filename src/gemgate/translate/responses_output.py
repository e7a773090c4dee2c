"""Gemini answers -> OpenAI Responses output items and stream events (the door's side).

:class:`OutputBuilder` reads a candidate's parts, whole or chunk by chunk, and keeps the
output items: ``reasoning`` for thought summaries (and for each thought signature, sealed in
its ``encrypted_content``), ``message`` for text, ``function_call`` for calls (named as the
client declared them, with their ``namespace``) and ``custom_tool_call`` for calls of
custom tools (:mod:`responses_tools`). Google Search grounding (``groundingMetadata``)
becomes a ``web_search_call`` item after the answer and ``url_citation`` annotations on its
text (Gemini's byte offsets turned into character offsets). It also
gives the events a stream sends for them, in the order the openai SDK accumulates them
(``output_item.added``, ``content_part.added``, ``output_text.delta``, ...), so that a
unary answer and a streamed one hold the same items. Text is kept as fragments and joined
once, when its item closes.
"""

from __future__ import annotations

import secrets
from typing import Any

from gemgate.translate.anthropic_common import valid_signature
from gemgate.translate.openai_common import FILTERED, as_int, dumps_args
from gemgate.translate.responses_items import ON_NEXT, ON_THOUGHT, seal
from gemgate.translate.responses_tools import CUSTOM_ARG, ToolMap

Event = dict[str, Any]
Item = dict[str, Any]


def new_item_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(16)}"


class _Open:
    """The item being written: a reasoning summary or a message's text."""

    __slots__ = ("fragments", "index", "item", "started")

    def __init__(self, item: Item, index: int) -> None:
        self.item = item
        self.index = index
        self.fragments: list[str] = []
        self.started = False  # its summary or content part has been announced


class OutputBuilder:
    def __init__(self, tools: ToolMap | None = None) -> None:
        self.items: list[Item] = []
        self.finish: Any = None
        self.blocked = False
        self.usage: dict[str, Any] | None = None
        self._open: _Open | None = None
        self._tools = tools or ToolMap()
        self._grounding: dict[str, Any] | None = None

    # ------------------------------------------------------------ input

    def feed(self, response: dict[str, Any]) -> list[Event]:
        """One GenerateContentResponse (a whole answer or a stream chunk) -> its events."""
        meta = response.get("usageMetadata")
        if isinstance(meta, dict):
            self.usage = meta
        out: list[Event] = []
        candidates = response.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            feedback = response.get("promptFeedback")
            if isinstance(feedback, dict) and feedback.get("blockReason"):
                self.blocked = True
            return out
        cand = candidates[0] if isinstance(candidates[0], dict) else {}
        content = cand.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        for part in parts or ():
            if isinstance(part, dict):
                self._part(part, out)
        grounding = cand.get("groundingMetadata")
        if isinstance(grounding, dict):
            self._grounding = grounding  # each chunk's is the whole, as far as it goes
        if cand.get("finishReason"):
            self.finish = cand["finishReason"]
        return out

    def close(self) -> list[Event]:
        out: list[Event] = []
        if self._grounding is not None:
            self._annotate(self._grounding, out)
        self._close(out)
        if self._grounding is not None:
            self._search_call(self._grounding, out)
        return out

    # ------------------------------------------------------------ parts

    def _part(self, part: dict[str, Any], out: list[Event]) -> None:
        sig = valid_signature(part.get("thoughtSignature"))
        if "functionCall" in part:
            self._close(out)
            if sig:
                self._sealed(sig, out)
            self._call(part["functionCall"], out)
            return
        text = part.get("text")
        if not isinstance(text, str):
            return  # media and code parts have no item here
        if part.get("thought"):
            current = self._open
            if current is None or current.item["type"] != "reasoning":
                self._begin(_reasoning_item(), out)
            if text:
                self._write(text, out)
            if sig:
                assert self._open is not None
                self._open.item["encrypted_content"] = seal(sig, ON_THOUGHT)
                self._close(out)
            return
        if sig:
            self._close(out)
            self._sealed(sig, out)
        if not text:
            return
        current = self._open
        if current is None or current.item["type"] != "message":
            self._begin(_message_item(), out)
        self._write(text, out)

    def _sealed(self, sig: str, out: list[Event]) -> None:
        """A reasoning item carrying the signature of the part after it."""
        item = {**_reasoning_item(), "encrypted_content": seal(sig, ON_NEXT)}
        self._begin(item, out)
        self._close(out)

    def _call(self, call: Any, out: list[Event]) -> None:
        fc = call if isinstance(call, dict) else {}
        call_id = fc.get("id") if isinstance(fc.get("id"), str) and fc.get("id") else None
        given = fc.get("args")
        args: dict[str, Any] = given if isinstance(given, dict) else {}
        ref = self._tools.client(str(fc.get("name") or ""))
        if ref.custom:
            raw = args.get(CUSTOM_ARG)
            text = raw if isinstance(raw, str) else dumps_args(args)
            item: Item = {"id": new_item_id("ctc"), "type": "custom_tool_call", "status": "in_progress",
                          "call_id": call_id or new_item_id("call"), "input": "", "name": ref.name}
        else:
            text = dumps_args(args)
            item = {"id": new_item_id("fc"), "type": "function_call", "status": "in_progress",
                    "arguments": "", "call_id": call_id or new_item_id("call"), "name": ref.name}
        if ref.namespace is not None:
            item["namespace"] = ref.namespace
        index = len(self.items)
        self.items.append(item)
        out.append({"type": "response.output_item.added", "output_index": index, "item": dict(item)})
        where = {"item_id": item["id"], "output_index": index}
        if ref.custom:
            out.append({"type": "response.custom_tool_call_input.delta", **where, "delta": text})
            out.append({"type": "response.custom_tool_call_input.done", **where, "input": text})
            item["input"] = text
        else:
            out.append({"type": "response.function_call_arguments.delta", **where, "delta": text})
            out.append({"type": "response.function_call_arguments.done", **where,
                        "name": item["name"], "arguments": text})
            item["arguments"] = text
        item["status"] = "completed"
        out.append({"type": "response.output_item.done", "output_index": index, "item": item})

    # ------------------------------------------------------------ grounding

    def _annotate(self, grounding: dict[str, Any], out: list[Event]) -> None:
        """``url_citation`` annotations on the messages' text, from groundingSupports."""
        current = self._open
        messages: list[tuple[int, Item, str]] = []  # (output index, item, its text)
        for index, item in enumerate(self.items):
            if item["type"] != "message":
                continue
            if current is not None and current.item is item:
                messages.append((index, item, "".join(current.fragments)))
            elif item.get("content"):
                messages.append((index, item, str(item["content"][0].get("text") or "")))
        if not messages:
            return
        starts, whole = [], ""
        for _index, _item, text in messages:
            starts.append(len(whole))
            whole += text
        encoded = whole.encode()

        def char_at(byte: Any) -> int:
            return len(encoded[: max(0, as_int(byte))].decode(errors="ignore"))

        chunks = grounding.get("groundingChunks") or []
        for support in grounding.get("groundingSupports") or ():
            segment = support.get("segment") if isinstance(support, dict) else None
            if not isinstance(segment, dict):
                continue
            start, end = char_at(segment.get("startIndex")), char_at(segment.get("endIndex"))
            which = max(i for i, s in enumerate(starts) if s <= start)
            index, item, text = messages[which]
            offset = starts[which]
            for k in support.get("groundingChunkIndices") or ():
                web = chunks[k].get("web") if isinstance(k, int) and 0 <= k < len(chunks) else None
                if not isinstance(web, dict) or not isinstance(web.get("uri"), str):
                    continue
                annotation = {"type": "url_citation", "start_index": start - offset,
                              "end_index": min(end - offset, len(text)), "url": web["uri"],
                              "title": str(web.get("title") or web["uri"])}
                found = self._annotations_of(item)
                out.append({"type": "response.output_text.annotation.added", "item_id": item["id"],
                            "output_index": index, "content_index": 0,
                            "annotation_index": len(found), "annotation": annotation})
                found.append(annotation)

    def _annotations_of(self, item: Item) -> list[dict[str, Any]]:
        if item.get("content"):  # closed: its part is final
            found: list[dict[str, Any]] = item["content"][0]["annotations"]
            return found
        return item.setdefault("_annotations", [])

    def _search_call(self, grounding: dict[str, Any], out: list[Event]) -> None:
        """The search Gemini ran, as the ``web_search_call`` item OpenAI reports."""
        queries = [q for q in grounding.get("webSearchQueries") or () if isinstance(q, str)]
        sources = [{"type": "url", "url": c["web"]["uri"]} for c in grounding.get("groundingChunks") or ()
                   if isinstance(c, dict) and isinstance(c.get("web"), dict)
                   and isinstance(c["web"].get("uri"), str)]
        if not queries and not sources:
            return
        action: dict[str, Any] = {"type": "search", "query": queries[0] if queries else "",
                                  "queries": queries, "sources": sources}
        item = {"id": new_item_id("ws"), "type": "web_search_call", "status": "completed", "action": action}
        index = len(self.items)
        self.items.append(item)
        where = {"item_id": item["id"], "output_index": index}
        out.append({"type": "response.output_item.added", "output_index": index,
                    "item": {**item, "status": "in_progress"}})
        out.append({"type": "response.web_search_call.in_progress", **where})
        out.append({"type": "response.web_search_call.searching", **where})
        out.append({"type": "response.web_search_call.completed", **where})
        out.append({"type": "response.output_item.done", "output_index": index, "item": item})

    # ------------------------------------------------------------ open items

    def _begin(self, item: Item, out: list[Event]) -> None:
        self._close(out)
        index = len(self.items)
        self.items.append(item)
        self._open = _Open(item, index)
        out.append({"type": "response.output_item.added", "output_index": index, "item": _snapshot(item)})

    def _write(self, text: str, out: list[Event]) -> None:
        current = self._open
        assert current is not None
        item, where = current.item, {"item_id": current.item["id"], "output_index": current.index}
        if item["type"] == "reasoning":
            if not current.started:
                current.started = True
                out.append({"type": "response.reasoning_summary_part.added", **where,
                            "summary_index": 0, "part": {"type": "summary_text", "text": ""}})
            out.append({"type": "response.reasoning_summary_text.delta", **where,
                        "summary_index": 0, "delta": text})
        else:
            if not current.started:
                current.started = True
                out.append({"type": "response.content_part.added", **where, "content_index": 0,
                            "part": _output_text("")})
            out.append({"type": "response.output_text.delta", **where, "content_index": 0,
                        "delta": text, "logprobs": []})
        current.fragments.append(text)

    def _close(self, out: list[Event]) -> None:
        current = self._open
        if current is None:
            return
        self._open = None
        item, where = current.item, {"item_id": current.item["id"], "output_index": current.index}
        text = "".join(current.fragments)
        if item["type"] == "reasoning":
            if current.started:
                part = {"type": "summary_text", "text": text}
                item["summary"] = [part]
                out.append({"type": "response.reasoning_summary_text.done", **where,
                            "summary_index": 0, "text": text})
                out.append({"type": "response.reasoning_summary_part.done", **where,
                            "summary_index": 0, "part": part})
        else:
            part = _output_text(text)
            part["annotations"] = item.pop("_annotations", [])
            item["content"] = [part]
            item["status"] = "completed"
            if current.started:
                out.append({"type": "response.output_text.done", **where, "content_index": 0,
                            "text": text, "logprobs": []})
                out.append({"type": "response.content_part.done", **where, "content_index": 0,
                            "part": part})
        out.append({"type": "response.output_item.done", "output_index": current.index, "item": item})

    # ------------------------------------------------------------ the outcome

    def status(self) -> tuple[str, dict[str, Any] | None]:
        """The response's status and incomplete_details."""
        if self.blocked or self.finish in FILTERED:
            return "incomplete", {"reason": "content_filter"}
        if self.finish == "MAX_TOKENS":
            return "incomplete", {"reason": "max_output_tokens"}
        return "completed", None


def _reasoning_item() -> Item:
    return {"id": new_item_id("rs"), "type": "reasoning", "summary": []}


def _message_item() -> Item:
    return {"id": new_item_id("msg"), "type": "message", "status": "in_progress",
            "role": "assistant", "content": []}


def _output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _snapshot(item: Item) -> Item:
    """An item as its ``output_item.added`` event shows it (later changes not included)."""
    return {k: (list(v) if isinstance(v, list) else v) for k, v in item.items()}


def usage_to_responses(meta: dict[str, Any] | None) -> dict[str, Any]:
    """Gemini usageMetadata -> the Responses usage object."""
    meta = meta or {}
    prompt = as_int(meta.get("promptTokenCount"))
    thoughts = as_int(meta.get("thoughtsTokenCount"))
    output = as_int(meta.get("candidatesTokenCount")) + as_int(meta.get("toolUsePromptTokenCount")) + thoughts
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": as_int(meta.get("cachedContentTokenCount"))},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": thoughts},
        "total_tokens": prompt + output,
    }
