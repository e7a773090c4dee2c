"""llama.cpp in-process: one worker thread per loaded model, fed by a FIFO job queue.

A llama.cpp context is not thread-safe, so exactly one thread ever touches it: the worker
that loaded it. Callers on the event loop submit jobs; a job streams its results back with
``loop.call_soon_threadsafe`` into its own ``asyncio.Queue``. Jobs run first come, first
served. Cancelling a job (its consumer went away) stops generation at the next token, or
between prompt batches; a cancelled job still waiting in the queue is skipped.

This module speaks text and token ids only; the Gemini wire format lives in ``local.py``.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import logging
import math
import os
import queue
import secrets
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

import llama_cpp

from gemgate import errors

log = logging.getLogger(__name__)
llama_log = logging.getLogger("gemgate.llama_cpp")

DEFAULT_MAX_OUTPUT = 8192  # cap when the request sets no maxOutputTokens
EMBED_CTX = 2048  # tokens per embedded text; longer texts are truncated
EMBED_BATCH = 64

Finish = Literal["STOP", "MAX_TOKENS"]


# ---------------------------------------------------------------------------------------
# requests and results


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of prompt text. ``special`` parses control-token markup such as
    ``<start_of_turn>``; it is set only for template text, never for client text."""

    text: str
    special: bool = False


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 0.95
    top_k: int = 64
    max_tokens: int | None = None  # None: up to the context remainder, capped at 8192
    stop: tuple[str, ...] = ()
    seed: int | None = None  # None: a fresh random seed
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0


@dataclass(frozen=True, slots=True)
class PromptEvent:
    tokens: int


@dataclass(frozen=True, slots=True)
class TextEvent:
    text: str
    tokens: int  # generated tokens so far


@dataclass(frozen=True, slots=True)
class EndEvent:
    finish: Finish
    tokens: int


Event = PromptEvent | TextEvent | EndEvent


class _Cancelled(Exception):
    """The job's consumer went away; nobody is listening."""


# ---------------------------------------------------------------------------------------
# llama.cpp logging -> Python logging

# llama.cpp's info and warnings are load-time diagnostics (real failures come back as
# return codes), so they are logged at DEBUG; its errors at WARNING.
_LEVELS = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.DEBUG, 4: logging.WARNING}


def _on_llama_log(level: int, text: bytes | None, _user_data: Any) -> None:
    if text and llama_log.isEnabledFor(_LEVELS.get(level, logging.DEBUG)):
        message = text.decode("utf-8", "replace").rstrip()
        if message:
            llama_log.log(_LEVELS.get(level, logging.DEBUG), "%s", message)


_LOG_CALLBACK = llama_cpp.llama_log_callback(_on_llama_log)


# ---------------------------------------------------------------------------------------
# one loaded model; used only by the thread that created it


class LlamaModel:
    """A GGUF model with one context, driven through llama.cpp's C API."""

    def __init__(self, path: Path, *, n_ctx: int, n_threads: int, embedding: bool = False) -> None:
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        mparams = llama_cpp.llama_model_default_params()
        # Extra buffer types (AMX, repacked weights) are off: the AMX kernels fault on CPUs
        # that advertise AMX but whose hypervisor does not enable it (seen on cloud VMs).
        mparams.use_extra_bufts = False
        model = llama_cpp.llama_model_load_from_file(os.fsencode(path), mparams)
        if not model:
            raise RuntimeError(f"llama.cpp could not load {path.name}")
        cparams = llama_cpp.llama_context_default_params()
        n_ctx = min(n_ctx, llama_cpp.llama_model_n_ctx_train(model) or n_ctx)
        cparams.n_ctx = n_ctx
        # Every token of an embedded text is an output, and llama.cpp computes and keeps
        # full-vocabulary logits for each output (1 MiB per token for Gemma), so embedding
        # runs in small batches and pools the per-token vectors itself.
        cparams.n_batch = min(n_ctx, EMBED_BATCH if embedding else 512)
        cparams.n_ubatch = cparams.n_batch
        cparams.n_threads = n_threads
        cparams.n_threads_batch = n_threads
        cparams.no_perf = True
        cparams.swa_full = False  # each job starts from an empty cache: no prefix reuse
        if embedding:
            cparams.embeddings = True
            cparams.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_NONE
        ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not ctx:
            llama_cpp.llama_model_free(model)
            raise RuntimeError(f"llama.cpp could not create a context for {path.name}")
        self._model = model
        self._ctx = ctx
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._mem = llama_cpp.llama_get_memory(ctx)
        self.n_ctx = int(llama_cpp.llama_n_ctx(ctx))
        self.n_batch = int(llama_cpp.llama_n_batch(ctx))
        self.n_embd = int(llama_cpp.llama_model_n_embd(model))
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._piece = ctypes.create_string_buffer(256)
        self.chat_template = self.meta("tokenizer.chat_template")
        self.bos_text = self.token_text(self.bos)
        self.eos_text = self.token_text(int(llama_cpp.llama_vocab_eos(self._vocab)))

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def meta(self, key: str) -> str | None:
        """A scalar metadata value of the GGUF (``tokenizer.chat_template``), or None."""
        size = 1024
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1
        return None

    # -- vocabulary

    def token_text(self, token: int) -> str:
        """The text of a token, control tokens included (``<bos>``); "" for no token."""
        if token < 0:
            return ""
        buf = ctypes.create_string_buffer(256)
        n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, True)
        return buf.raw[: max(n, 0)].decode("utf-8", "replace")

    def tokenize(self, text: str, *, special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        if not data:
            return []
        size = len(data) + 8
        for _ in range(2):
            buf = (llama_cpp.llama_token * size)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, size, False, special)
            if n >= 0:
                return list(buf[:n])
            size = -n
        raise RuntimeError("tokenization failed")

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for (control tokens give ``b""``)."""
        n = llama_cpp.llama_token_to_piece(
            self._vocab, token, self._piece, len(self._piece), 0, False
        )
        if n < 0:
            self._piece = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece, -n, 0, False)
        return self._piece.raw[: max(n, 0)]

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    # -- evaluation

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)

    def decode(self, tokens: Sequence[int], check: Callable[[], None]) -> None:
        """Append ``tokens`` to the context, in batches; ``check`` runs between batches."""
        for start in range(0, len(tokens), self.n_batch):
            if start:
                check()
            part = tokens[start : start + self.n_batch]
            arr = (llama_cpp.llama_token * len(part))(*part)
            rc = llama_cpp.llama_decode(self._ctx, llama_cpp.llama_batch_get_one(arr, len(part)))
            if rc != 0:
                raise RuntimeError(f"llama_decode returned {rc}")

    def embed(self, tokens: Sequence[int], check: Callable[[], None]) -> list[float]:
        """Mean of the final hidden states of ``tokens``, L2-normalised (an embedding
        context only)."""
        n_embd = self.n_embd
        sums = [0.0] * n_embd
        self.clear()
        batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        try:
            for start in range(0, len(tokens), self.n_batch):
                if start:
                    check()
                part = tokens[start : start + self.n_batch]
                batch.n_tokens = len(part)
                for i, token in enumerate(part):
                    batch.token[i] = token
                    batch.pos[i] = start + i
                    batch.n_seq_id[i] = 1
                    batch.seq_id[i][0] = 0
                    batch.logits[i] = 1
                rc = llama_cpp.llama_decode(self._ctx, batch)
                if rc != 0:
                    raise RuntimeError(f"llama_decode returned {rc}")
                ptr = llama_cpp.llama_get_embeddings(self._ctx)
                if not ptr:
                    raise RuntimeError("no embeddings")
                flat = ptr[: len(part) * n_embd]  # row-major: one row per token
                sums = [a + math.fsum(flat[j::n_embd]) for j, a in enumerate(sums)]
        finally:
            llama_cpp.llama_batch_free(batch)
        norm = math.sqrt(math.fsum(v * v for v in sums))
        return [v / norm for v in sums] if norm > 0 else sums

    def sampler(self, s: Sampling, *, seed: int, penalty_window: int) -> Any:
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        add = llama_cpp.llama_sampler_chain_add
        if s.presence_penalty or s.frequency_penalty:
            init = llama_cpp.llama_sampler_init_penalties
            args: tuple[Any, ...] = (penalty_window, 1.0, s.frequency_penalty, s.presence_penalty)
            if len(getattr(init, "argtypes", None) or ()) == 5:  # bindings that take n_vocab
                args = (self.n_vocab, *args)
            add(chain, init(*args))
        if s.temperature <= 0:
            add(chain, llama_cpp.llama_sampler_init_greedy())
        else:
            if s.top_k > 0:
                add(chain, llama_cpp.llama_sampler_init_top_k(s.top_k))
            if s.top_p < 1.0:
                add(chain, llama_cpp.llama_sampler_init_top_p(s.top_p, 1))
            add(chain, llama_cpp.llama_sampler_init_temp(s.temperature))
            add(chain, llama_cpp.llama_sampler_init_dist(seed))
        return chain

    def sample(self, chain: Any) -> int:
        """Pick the next token from the last logits (and record it in the chain)."""
        return int(llama_cpp.llama_sampler_sample(chain, self._ctx, -1))

    @staticmethod
    def free_sampler(chain: Any) -> None:
        llama_cpp.llama_sampler_free(chain)


# ---------------------------------------------------------------------------------------
# jobs


class Job:
    """A unit of work for a worker thread."""

    def __init__(self) -> None:
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def run(self, model: LlamaModel, check: Callable[[], None]) -> None:
        raise NotImplementedError

    def fail(self, exc: BaseException) -> None:
        raise NotImplementedError


def _deliver(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> bool:
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # the loop is closed: nobody is listening any more
        return False
    return True


class GenerationJob(Job):
    """Generate from a prompt; events flow to :meth:`events` on the submitting loop."""

    def __init__(
        self, segments: Sequence[Segment], sampling: Sampling, label: str, *, trim: bool = False
    ) -> None:
        """``trim``: whitespace around the generated text is dropped (it is layout)."""
        super().__init__()
        self.segments = tuple(segments)
        self.sampling = sampling
        self.label = label
        self.trim = trim
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event | BaseException] = asyncio.Queue()

    def _emit(self, item: Event | BaseException) -> None:
        if not _deliver(self._loop, self._queue.put_nowait, item):
            self.cancel()

    def fail(self, exc: BaseException) -> None:
        self._emit(exc)

    async def events(self) -> AsyncGenerator[Event, None]:
        """The job's events, ending with an :class:`EndEvent`; failures are raised.
        Leaving early (close, cancellation) cancels the job."""
        try:
            while True:
                item = await self._queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, EndEvent):
                    return
        finally:
            self.cancel()

    def run(self, model: LlamaModel, check: Callable[[], None]) -> None:
        def check_all() -> None:
            if self.cancelled:
                raise _Cancelled
            check()

        tokens = [model.bos] if model.add_bos and model.bos >= 0 else []
        for seg in self.segments:
            tokens += model.tokenize(seg.text, special=seg.special)
        n_prompt = len(tokens)
        if n_prompt >= model.n_ctx:
            raise errors.InvalidArgument.field(
                "contents",
                f"the prompt is {n_prompt} tokens; model {self.label} accepts at most "
                f"{model.n_ctx - 1} prompt tokens (context {model.n_ctx})",
            )
        self._emit(PromptEvent(n_prompt))
        room = model.n_ctx - n_prompt
        s = self.sampling
        limit = min(s.max_tokens if s.max_tokens else DEFAULT_MAX_OUTPUT, room)
        seed = secrets.randbits(32) if s.seed is None else s.seed & 0xFFFFFFFF
        seed = min(seed, 0xFFFFFFFE)  # 0xFFFFFFFF asks llama.cpp for a random seed

        model.clear()
        model.decode(tokens, check_all)
        chain = model.sampler(s, seed=seed, penalty_window=min(limit, 2**31 - 1))
        try:
            self._generate(model, chain, limit, check_all)
        finally:
            model.free_sampler(chain)

    def _generate(
        self, model: LlamaModel, chain: Any, limit: int, check: Callable[[], None]
    ) -> None:
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stops = tuple(s for s in self.sampling.stop if s)
        pending = ""  # decoded text not yet sent (a possible start of a stop sequence)
        n = 0
        started = False  # (trim) some text other than whitespace came
        finish: Finish = "STOP"
        while True:
            check()
            token = model.sample(chain)
            if model.is_eog(token):
                break
            n += 1
            pending += decoder.decode(model.piece(token))
            if self.trim and not started:
                pending = pending.lstrip()
                started = bool(pending)
            cut = _find_stop(pending, stops) if stops else None
            if cut is not None:
                pending = pending[:cut]
                break
            hold = _held_suffix(pending, stops) if stops else 0
            if self.trim:  # trailing whitespace waits: it may end the answer
                hold = max(hold, len(pending) - len(pending.rstrip()))
            ready, pending = pending[: len(pending) - hold], pending[len(pending) - hold :]
            if ready:
                self._emit(TextEvent(ready, n))
            if n >= limit:
                finish = "MAX_TOKENS"
                break
            model.decode((token,), check)
        # an incomplete UTF-8 sequence left in the decoder at the end is dropped
        if self.trim:
            pending = pending.rstrip()
        if pending:
            self._emit(TextEvent(pending, n))
        self._emit(EndEvent(finish, n))


def _find_stop(text: str, stops: tuple[str, ...]) -> int | None:
    found = [i for i in (text.find(s) for s in stops) if i >= 0]
    return min(found) if found else None


def _held_suffix(text: str, stops: tuple[str, ...]) -> int:
    """Length of the longest tail of ``text`` that could begin a stop sequence."""
    best = 0
    for stop in stops:
        for k in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:k]):
                best = k
                break
    return best


class EmbedJob(Job):
    """Embed texts; the result is ``(vectors, token counts)`` on a future of the caller's loop."""

    def __init__(self, texts: Sequence[str]) -> None:
        super().__init__()
        self.texts = tuple(texts)
        self._loop = asyncio.get_running_loop()
        self.future: asyncio.Future[tuple[list[list[float]], list[int]]] = (
            self._loop.create_future()
        )

    def _settle(self, result: Any, exc: BaseException | None) -> None:
        if self.future.done():
            return
        if exc is not None:
            self.future.set_exception(exc)
        else:
            self.future.set_result(result)

    def fail(self, exc: BaseException) -> None:
        _deliver(self._loop, self._settle, None, exc)

    def run(self, model: LlamaModel, check: Callable[[], None]) -> None:
        vectors: list[list[float]] = []
        counts: list[int] = []
        for text in self.texts:
            if self.cancelled:
                raise _Cancelled
            check()
            tokens = [model.bos, *model.tokenize(text)][: model.n_ctx]
            vectors.append(model.embed(tokens, check))
            counts.append(len(tokens))
        _deliver(self._loop, self._settle, (vectors, counts), None)


# ---------------------------------------------------------------------------------------
# the worker thread

J = TypeVar("J", bound=Job)


@dataclass
class WorkerStats:
    """What a worker did with its jobs (for operators and tests)."""

    started: int = 0  # jobs that began running
    stopped: int = 0  # running jobs stopped because their caller went away
    skipped: int = 0  # queued jobs dropped because their caller went away before they ran


class Worker(Generic[J]):
    """One thread that loads a model and then runs jobs from a FIFO queue, one at a time."""

    def __init__(self, label: str, load: Callable[[], LlamaModel]) -> None:
        self.label = label
        self._load = load
        self.stats = WorkerStats()
        self._jobs: queue.SimpleQueue[J | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._open = False
        self._thread: threading.Thread | None = None
        self._done: asyncio.Future[None] | None = None
        self.model: LlamaModel | None = None

    async def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"worker {self.label} was already started")
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._done = loop.create_future()
        self._thread = threading.Thread(
            target=self._main, args=(loop, ready), name=f"llama-{self.label}", daemon=True
        )
        self._thread.start()
        await ready
        with self._lock:
            self._open = not self._closing.is_set()

    def submit(self, job: J) -> J:
        with self._lock:
            if not self._open:
                raise errors.Unavailable(f"model {self.label} is not running")
            self._jobs.put(job)
        return job

    async def aclose(self) -> None:
        with self._lock:
            if self._thread is None or self._closing.is_set():
                return
            self._closing.set()
            self._open = False
            self._jobs.put(None)
        if self._done is not None:
            await asyncio.shield(self._done)

    def _check(self) -> None:
        if self._closing.is_set():
            raise errors.Unavailable(f"model {self.label} is shutting down")

    def _main(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        def settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

        try:
            self.model = self._load()
        except Exception as exc:
            log.exception("loading model %s failed", self.label)
            self._closing.set()
            _deliver(
                loop, settle, ready, errors.Internal(f"could not load model {self.label}: {exc}")
            )
            if self._done is not None:
                _deliver(loop, settle, self._done, None)
            return
        _deliver(loop, settle, ready, None)
        try:
            self._serve(self.model)
        finally:
            self.model.close()
            self.model = None
            while True:  # anything still queued will never run
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    job.fail(errors.Unavailable(f"model {self.label} is shutting down"))
            if self._done is not None:
                _deliver(loop, settle, self._done, None)

    def _serve(self, model: LlamaModel) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if job.cancelled:
                self.stats.skipped += 1
                continue
            self.stats.started += 1
            try:
                job.run(model, self._check)
            except _Cancelled:
                self.stats.stopped += 1
            except errors.GatewayError as exc:
                job.fail(exc)
            except Exception:
                log.exception("model %s failed", self.label)
                job.fail(errors.Internal(f"model {self.label} failed to run the request"))
