"""Prompt formats of the local provider: a conversation -> the text llama.cpp evaluates.

A GGUF that carries a chat template (metadata ``tokenizer.chat_template``, as
instruction-tuned models do) is prompted with that template, rendered with Jinja as
Hugging Face's ``transformers`` renders it (:class:`ChatTemplate`). A base model, which
never learned a chat format, is prompted as a completion (:class:`QuestionAnswer`): a few
plain question-and-answer examples, then the conversation in the same layout, ending in
``Answer:``; stop sequences end the answer at the next blank line or question.

Client text never becomes control tokens: a chat template is rendered with an unguessable
placeholder for each message, and the rendered text is cut at the placeholders into
template text (tokenized with control-token parsing on) and client text (parsed as plain
text). The question-and-answer layout has no control tokens at all.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, NoReturn, Protocol

import orjson
from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gemgate.errors import InvalidArgument
from gemgate.providers.local_engine import Segment

Role = Literal["user", "model"]
Turn = tuple[Role, str]


@dataclass(frozen=True, slots=True)
class Prompt:
    """What the model evaluates, with the stop sequences its layout needs. ``trim``: the
    answer's surrounding whitespace is layout, not answer (it is removed)."""

    segments: tuple[Segment, ...]
    stop: tuple[str, ...] = ()
    trim: bool = False


class PromptFormat(Protocol):
    """Turns a system instruction and alternating user/model turns into a :class:`Prompt`.
    ``temperature``: what a request that sets none is sampled at (None: the provider's
    default)."""

    name: str
    temperature: float | None

    def build(self, system: str, turns: Sequence[Turn]) -> Prompt: ...


# ---------------------------------------------------------------------------------------
# instruction-tuned models: their own chat template


def _raise_exception(message: str) -> NoReturn:
    raise TemplateError(message)


def _tojson(value: Any, indent: int | None = None, **_: Any) -> str:
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(value, option=option).decode()


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class ChatTemplate:
    """A model's Jinja chat template (sandboxed; ``trim_blocks`` and ``lstrip_blocks`` on,
    with ``raise_exception``, ``strftime_now`` and ``tojson`` as in ``transformers``)."""

    name = "chat template"
    temperature: float | None = None

    def __init__(
        self, source: str, *, bos_token: str = "", eos_token: str = "", add_bos: bool = True
    ) -> None:
        env = ImmutableSandboxedEnvironment(
            trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"]
        )
        env.filters["tojson"] = _tojson
        env.globals["raise_exception"] = _raise_exception
        env.globals["strftime_now"] = _strftime_now
        self._template = env.from_string(source)
        self.bos_token = bos_token
        self.eos_token = eos_token
        # The engine puts BOS first itself when the model wants one.
        self._strip_bos = add_bos and bool(bos_token)

    def build(self, system: str, turns: Sequence[Turn]) -> Prompt:
        nonce = secrets.token_hex(16)
        texts: list[str] = []

        def slot(text: str) -> str:
            texts.append(text)
            return f"\ue000{nonce}:{len(texts) - 1}\ue001"

        messages = [{"role": "system", "content": slot(system)}] if system else []
        messages += [
            {"role": "assistant" if role == "model" else "user", "content": slot(text)}
            for role, text in turns
        ]
        try:
            rendered = self._template.render(
                messages=messages,
                add_generation_prompt=True,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except TemplateError as exc:
            raise InvalidArgument.field(
                "contents", f"the model's chat template refused the conversation: {exc}"
            ) from None
        if self._strip_bos and rendered.startswith(self.bos_token):
            rendered = rendered[len(self.bos_token) :]
        pieces = re.split(f"\ue000{nonce}:(\\d+)\ue001", rendered)
        segments: list[Segment] = []
        for i, piece in enumerate(pieces):
            if i % 2:
                segments.append(Segment(texts[int(piece)]))
            elif piece:
                segments.append(Segment(piece, special=True))
        return Prompt(tuple(segments))


# ---------------------------------------------------------------------------------------
# base models: a completion


# Plain examples that set the layout and the length of an answer; none is a trick.
EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is the capital of Japan?", "Tokyo."),
    ("How many legs does a dog have?", "Four."),
    ("Write a sentence about the moon.", "The moon lights up the night sky."),
)


class QuestionAnswer:
    """A base model's prompt::

        {system instruction}

        Question: {example}
        Answer: {example answer}

        ...
        Question: {user turn}
        Answer: {model turn}

        Question: {last user turn}
        Answer:

    The answer ends at a blank line or at the next question. A conversation that ends with
    a model turn is continued (that turn is the start of the answer)."""

    name = "question and answer"
    # Greedy: a base model this small answers plain questions correctly far more often
    # (bench/local_quality.py measures it).
    temperature: float | None = 0.0

    def __init__(
        self,
        examples: Sequence[tuple[str, str]] = EXAMPLES,
        *,
        question: str = "Question:",
        answer: str = "Answer:",
    ) -> None:
        self.examples = tuple(examples)
        self.question = question
        self.answer = answer
        self.stop = ("\n\n", f"\n{question}")

    def build(self, system: str, turns: Sequence[Turn]) -> Prompt:
        blocks = [system] if system else []
        blocks += [self._pair(q, a) for q, a in self.examples]
        question: str | None = None  # the open question: the next model turn answers it
        for role, text in turns:
            if role == "user":
                if question is not None:
                    blocks.append(self._pair(question, ""))
                question = text
            else:
                blocks.append(self._pair(question, text))
                question = None
        if question is None:  # ends with a model turn: continue it
            return Prompt((Segment("\n\n".join(blocks)),), self.stop)
        blocks.append(self._pair(question, None))
        return Prompt((Segment("\n\n".join(blocks)),), self.stop, trim=True)

    def _pair(self, question: str | None, answer: str | None) -> str:
        """One block; ``answer`` None leaves it open for the model."""
        lines = [] if question is None else [f"{self.question} {question}"]
        lines.append(self.answer if answer is None else f"{self.answer} {answer}")
        return "\n".join(lines)


def for_model(
    chat_template: str | None, *, bos_token: str = "", eos_token: str = "", add_bos: bool = True
) -> PromptFormat:
    """The format a model is prompted with: its chat template when its GGUF has one, else
    the question-and-answer completion."""
    if chat_template:
        return ChatTemplate(chat_template, bos_token=bos_token, eos_token=eos_token, add_bos=add_bos)
    return QuestionAnswer()
