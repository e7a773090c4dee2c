"""The SDK's batches API, unchanged: inline and JSONL-file batches run upstream on a
Google channel (polled by the gateway, billed per item at the batch price) and by the
gateway itself on the local model; embedding batches; budgets reserved up front; batches
owned per key; cancel and delete."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess
from tests.resources.gateways import client, records

from gemgate.store.tables import usage_records

DONE = {"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}


def _wait(c: genai.Client, name: str, timeout: float = 60.0) -> types.BatchJob:
    deadline = time.monotonic() + timeout
    while True:
        job = c.batches.get(name=name)
        if job.state is not None and job.state.name in DONE:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"batch {name} still {job.state}")
        time.sleep(0.3)


def _requests(*texts: str, **config: Any) -> list[types.InlinedRequest]:
    return [
        types.InlinedRequest(
            contents=[types.Content(role="user", parts=[types.Part(text=t)])],
            metadata={"n": str(i)},
            config=types.GenerateContentConfig(**config) if config else None,
        )
        for i, t in enumerate(texts)
    ]


@pytest.mark.parametrize("version", ["v1", "v1beta"])
def test_an_inline_batch_runs_upstream_and_is_billed_at_half_price(
    resource_gw: GatewayProcess, make_key: Callable[..., str], google_a: FakeGemini, version: str
) -> None:
    c = client(resource_gw, make_key(), version)
    job = c.batches.create(model="gemini-2.5-flash", src=_requests("hello one", "hello two"),
                           config={"display_name": "greetings"})
    assert job.name and job.name.startswith("batches/")
    assert job.state is not None and job.state.name in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING")
    assert job.display_name == "greetings" and job.model == "models/gemini-2.5-flash"
    done = _wait(c, job.name)
    assert done.state is not None and done.state.name == "JOB_STATE_SUCCEEDED"
    assert done.dest is not None and done.dest.inlined_responses is not None
    answers = [r.response.text for r in done.dest.inlined_responses if r.response is not None]
    assert answers == ["echo: hello one", "echo: hello two"]
    assert [r.metadata for r in done.dest.inlined_responses] == [{"n": "0"}, {"n": "1"}]
    assert job.name in [b.name for b in c.batches.list()]
    [sent] = [r for r in google_a.requests if r.rpc == "batchGenerateContent"]
    inner = sent.json["batch"]["inputConfig"]["requests"]["requests"]
    assert [r["request"]["model"] for r in inner] == ["models/gemini-2.5-flash"] * 2

    rows = records(resource_gw, usage_records.c.batch_id == job.name.split("/")[1])
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        # Batch price: half of $0.30 / $2.50 per 1M tokens (150 and 1250 nanos per token).
        assert row["cost_nanos"] == row["prompt_tokens"] * 150 + row["output_text"] * 1250
        assert row["method"] == "batchGenerateContent" and row["channel"] == "google/gemini-2.5-flash"


def test_a_file_batch_runs_upstream_and_answers_with_a_responses_file(
    resource_gw: GatewayProcess, make_key: Callable[..., str], google_a: FakeGemini, tmp_path: Path
) -> None:
    c = client(resource_gw, make_key())
    lines = [{"key": f"req-{i}", "request": {"contents": [{"parts": [{"text": f"line {i}"}]}]}} for i in range(3)]
    source = tmp_path / "batch.jsonl"
    source.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    uploaded = c.files.upload(file=source, config={"mime_type": "application/jsonl"})
    assert uploaded.name is not None
    job = c.batches.create(model="gemini-2.5-flash", src=uploaded.name)
    assert job.name is not None
    done = _wait(c, job.name)
    assert done.state is not None and done.state.name == "JOB_STATE_SUCCEEDED"
    assert done.dest is not None and done.dest.file_name and done.dest.file_name.startswith("files/")
    out = [json.loads(x) for x in c.files.download(file=done.dest.file_name).decode().splitlines()]
    assert {o["key"]: o["response"]["candidates"][0]["content"]["parts"][0]["text"] for o in out} == {
        f"req-{i}": f"echo: line {i}" for i in range(3)
    }
    [sent] = [r for r in google_a.requests if r.rpc == "batchGenerateContent"]
    assert sent.json["batch"]["inputConfig"]["fileName"].startswith("files/")
    assert len(records(resource_gw, usage_records.c.batch_id == job.name.split("/")[1])) == 3


def test_a_batch_on_the_local_model_is_run_by_the_gateway(
    resource_gw: GatewayProcess, make_key: Callable[..., str]
) -> None:
    c = client(resource_gw, make_key())
    job = c.batches.create(model="gemma-3-270m", src=_requests("Say hi.", "Say bye.", max_output_tokens=8))
    assert job.name is not None
    done = _wait(c, job.name)
    assert done.state is not None and done.state.name == "JOB_STATE_SUCCEEDED"
    assert done.dest is not None and done.dest.inlined_responses is not None
    assert len(done.dest.inlined_responses) == 2
    assert all(r.response is not None and r.response.candidates for r in done.dest.inlined_responses)
    rows = records(resource_gw, usage_records.c.batch_id == job.name.split("/")[1])
    assert len(rows) == 2 and {r["method"] for r in rows} == {"batchGenerateContent"}
    assert {r["provider"] for r in rows} == {"local"}


def test_an_embedding_batch(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    c = client(resource_gw, make_key(), "v1beta")
    job = c.batches.create_embeddings(
        model="gemini-embedding-001",
        src=types.EmbeddingsBatchJobSource(inlined_requests=types.EmbedContentBatch(contents=["alpha", "beta"])),
    )
    assert job.name is not None
    done = _wait(c, job.name)
    assert done.state is not None and done.state.name == "JOB_STATE_SUCCEEDED"
    assert done.dest is not None and done.dest.inlined_embed_content_responses is not None
    vectors = [r.response.embedding.values for r in done.dest.inlined_embed_content_responses
               if r.response is not None and r.response.embedding is not None]
    assert len(vectors) == 2 and all(vectors)


def test_a_batch_is_refused_at_once_when_its_worst_case_does_not_fit(
    resource_gw: GatewayProcess, make_key: Callable[..., str]
) -> None:
    c = client(resource_gw, make_key("--budget-usd", "0.01"))
    # No maxOutputTokens: each item may write 65536 tokens ($0.08 at the batch price).
    with pytest.raises(errors.APIError) as refused:
        c.batches.create(model="gemini-2.5-flash", src=_requests("a", "b"))
    assert refused.value.code == 402
    job = c.batches.create(model="gemini-2.5-flash", src=_requests("a", "b", max_output_tokens=100))
    assert job.name is not None
    _wait(c, job.name)
    # The reservation was released: the same batch fits again.
    again = c.batches.create(model="gemini-2.5-flash", src=_requests("a", "b", max_output_tokens=100))
    assert again.name is not None


def test_another_key_cannot_see_a_batch(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    owner = client(resource_gw, make_key())
    job = owner.batches.create(model="gemini-2.5-flash", src=_requests("mine"))
    assert job.name is not None
    other = client(resource_gw, make_key())
    for call in (lambda: other.batches.get(name=job.name), lambda: other.batches.cancel(name=job.name),
                 lambda: other.batches.delete(name=job.name)):
        with pytest.raises(errors.ClientError) as caught:
            call()
        assert caught.value.code == 404
    assert list(other.batches.list()) == []
    assert owner.batches.get(name=job.name).name == job.name


def test_cancel_and_delete(resource_gw: GatewayProcess, make_key: Callable[..., str]) -> None:
    c = client(resource_gw, make_key())
    job = c.batches.create(model="gemma-3-270m", src=_requests(*[f"Count to {i}." for i in range(20)],
                                                                  max_output_tokens=16))
    assert job.name is not None
    c.batches.cancel(name=job.name)
    done = _wait(c, job.name)
    assert done.state is not None and done.state.name == "JOB_STATE_CANCELLED"
    c.batches.delete(name=job.name)
    with pytest.raises(errors.ClientError) as gone:
        c.batches.get(name=job.name)
    assert gone.value.code == 404
