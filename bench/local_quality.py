"""``python -m bench.local_quality``: how well, and how fast, the local model answers.

Runs the plain questions of ``bench/local_questions.toml`` (each with the answers that count)
and its open prompts (the README's) through the local provider in-process, once per prompt
layout, and prints a table: the share answered correctly (a correct answer also ends on its
own: finishReason STOP), the share that ended on its own, and the time and tokens per answer.
Requests carry no ``maxOutputTokens``, as a first request does, so the provider's default cap
applies. Layouts:

- ``chat``: Gemma's chat template (``<start_of_turn>`` turns), how the base model was prompted
  before it was prompted as a completion;
- ``qa``: ``Question:`` / ``Answer:`` with no examples;
- ``qa-fewshot``: the same after a few plain examples (what the provider ships);
- ``q-a-fewshot``: the examples with ``Q:`` / ``A:``.

Sampling ``default`` is what a request that sets no sampling field gets (the layout's
default: greedy for the question-and-answer layouts, temperature 1 with top-k 64 and top-p
0.95 for the chat template), ``greedy`` is temperature 0 and ``t0.5`` temperature 0.5; each
sampled run has its own fixed seed (``--seeds`` runs). The figures are also written to
``bench/out/local_quality.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gemgate.providers.base import UpstreamCall
from gemgate.providers.local import LocalProvider, default_model_path
from gemgate.providers.local_prompt import ChatTemplate, PromptFormat, QuestionAnswer

HERE = Path(__file__).resolve().parent
QUESTIONS = HERE / "local_questions.toml"
GEMMA_TEMPLATE = HERE / "gemma3_chat_template.jinja"


def layouts() -> dict[str, PromptFormat]:
    """The prompt layouts compared, by name."""
    return {
        "chat": ChatTemplate(GEMMA_TEMPLATE.read_text(), bos_token="<bos>", add_bos=True),
        "qa": QuestionAnswer(examples=()),
        "qa-fewshot": QuestionAnswer(),
        "q-a-fewshot": QuestionAnswer(question="Q:", answer="A:"),
    }


@dataclass(frozen=True, slots=True)
class Question:
    text: str
    answers: tuple[str, ...]  # empty: an open prompt, judged only on ending on its own


def load_questions(path: Path = QUESTIONS) -> list[Question]:
    data = tomllib.loads(path.read_text())
    items = [Question(q["q"], tuple(q["a"])) for q in data.get("question", [])]
    items += [Question(p["q"], ()) for p in data.get("prompt", [])]
    return items


def is_correct(answer: str, expected: tuple[str, ...]) -> bool:
    """Some expected answer occurs in ``answer`` as whole words, ignoring case."""
    return any(
        re.search(rf"(?<!\w){re.escape(e)}(?!\w)", answer, re.IGNORECASE) for e in expected
    )


async def _ask(provider: LocalProvider, q: Question, config: dict[str, Any]) -> dict[str, Any]:
    request: dict[str, Any] = {"contents": [{"parts": [{"text": q.text}]}]}
    if config:
        request["generationConfig"] = config
    t0 = time.perf_counter()
    reply = await provider.generate(UpstreamCall("gemma-3-270m", "generateContent", request))
    seconds = time.perf_counter() - t0
    cand = reply.data["candidates"][0] if reply.data else {}
    text = "".join(p.get("text", "") for p in cand.get("content", {}).get("parts", []))
    finish = cand.get("finishReason")
    usage = reply.usage or {}
    return {
        "question": q.text,
        "answer": text,
        "finish": finish,
        "tokens": int(usage.get("candidatesTokenCount", 0)),
        "seconds": round(seconds, 3),
        "correct": bool(q.answers) and finish == "STOP" and is_correct(text, q.answers),
    }


def summarize(rows: list[dict[str, Any]], n_questions: int) -> dict[str, Any]:
    graded = [r for r in rows if r["question_graded"]]
    seconds = [r["seconds"] for r in rows]
    return {
        "questions": n_questions,
        "answers": len(rows),
        "correct_share": sum(r["correct"] for r in graded) / len(graded) if graded else 0.0,
        "stop_share": sum(r["finish"] == "STOP" for r in rows) / len(rows) if rows else 0.0,
        "seconds_mean": statistics.fmean(seconds) if seconds else 0.0,
        "seconds_p50": statistics.median(seconds) if seconds else 0.0,
        "seconds_max": max(seconds, default=0.0),
        "tokens_mean": statistics.fmean(r["tokens"] for r in rows) if rows else 0.0,
        "tokens_max": max((r["tokens"] for r in rows), default=0),
    }


def sampling_configs(sampling: str, seeds: int) -> list[dict[str, Any]]:
    """``default``: no sampling fields, one fixed seed per run; ``greedy``: temperature 0;
    ``t0.5``: temperature 0.5, one fixed seed per run."""
    if sampling == "greedy":
        return [{"temperature": 0}]
    extra = {"temperature": float(sampling[1:])} if sampling.startswith("t") else {}
    return [{"seed": 1000 + i, **extra} for i in range(seeds)]


async def run(names: list[str], samplings: list[str], seeds: int) -> dict[str, Any]:
    questions = load_questions()
    formats = layouts()
    results: dict[str, Any] = {}
    for name in names:
        provider = LocalProvider("local", default_model_path(), prompt_format=formats[name])
        await provider.start()
        try:
            for sampling in samplings:
                configs = sampling_configs(sampling, seeds)
                rows = []
                for config in configs:
                    for q in questions:
                        row = await _ask(provider, q, config)
                        row["question_graded"] = bool(q.answers)
                        rows.append(row)
                results[f"{name}/{sampling}"] = {"summary": summarize(rows, len(questions)), "rows": rows}
                s = results[f"{name}/{sampling}"]["summary"]
                print(
                    f"{name}/{sampling}: correct {s['correct_share']:.0%}, "
                    f"stopped {s['stop_share']:.0%}, {s['seconds_mean']:.2f} s per answer",
                    flush=True,
                )
        finally:
            await provider.aclose()
    return results


def table(results: dict[str, Any]) -> str:
    lines = [
        "| layout / sampling | correct | ended on its own | s per answer (mean / p50 / max) "
        "| tokens per answer (mean / max) |",
        "|---|---:|---:|---:|---:|",
    ]
    for key, value in results.items():
        s = value["summary"]
        lines.append(
            f"| {key} | {s['correct_share']:.0%} | {s['stop_share']:.0%} "
            f"| {s['seconds_mean']:.2f} / {s['seconds_p50']:.2f} / {s['seconds_max']:.2f} "
            f"| {s['tokens_mean']:.1f} / {s['tokens_max']} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.local_quality", description=__doc__)
    p.add_argument("--layouts", default=",".join(layouts()), help="comma list of layouts")
    p.add_argument(
        "--sampling", default="default,greedy", help="comma list: default, greedy, t<temperature>"
    )
    p.add_argument("--seeds", type=int, default=2, help="runs with default sampling (default 2)")
    p.add_argument("--out", type=Path, default=HERE / "out", help="output directory")
    args = p.parse_args(argv)
    names = [n for n in args.layouts.split(",") if n]
    unknown = set(names) - set(layouts())
    if unknown:
        p.error(f"unknown layouts: {', '.join(sorted(unknown))}")
    samplings = [s for s in args.sampling.split(",") if s]
    for s in samplings:
        if not re.fullmatch(r"default|greedy|t[0-9.]+", s):
            p.error(f"unknown sampling {s!r}")
    results = asyncio.run(run(names, samplings, max(1, args.seeds)))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "local_quality.json").write_text(json.dumps(results, indent=1, ensure_ascii=False))
    print(table(results))


if __name__ == "__main__":
    main()
