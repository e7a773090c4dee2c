"""The Interactions API door with the real google-genai SDK against the real gateway: a
Google channel (the fake's ``/interactions``, faults included) and the built-in local model;
stored conversations, resumed streams, background runs, other keys, bad input, and one
exact usage record per interaction that reached an upstream."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types
from google.genai._interactions import (
    BadRequestError,
    InternalServerError,
    NotFoundError,
    RateLimitError,
)
from tests.billing.gateways import wait_for
from tests.conftest import UPSTREAM_KEY
from tests.doors.anthropic_gateway import records
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

CONFIG = """
[server]
host = "127.0.0.1"
port = {PORT}

[database]
url = "sqlite:///{DIR}/gemgate.db"

[routing]
circuit_failures = 0

[[providers]]
name = "google"
type = "gemini"
base_url = "%(google)s"
api_key = "env:%(google_var)s"

[[providers]]
name = "local"
type = "local"

[[models]]
id = "gemini-2.5-flash"
provider = "google"

[[models]]
id = "flash-alias"
provider = "google"
upstream_model = "gemini-2.5-flash"

[[models]]
id = "gemma-3-270m"
provider = "local"
"""


@pytest.fixture(scope="module")
def igw(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    text = CONFIG % {"google": fake_google.base_url, "google_var": UPSTREAM_KEY_VAR}
    proc = GatewayProcess(tmp_path_factory.mktemp("interactions"), text, env={UPSTREAM_KEY_VAR: UPSTREAM_KEY})
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def ikey(igw: GatewayProcess) -> str:
    return igw.create_key("interactions")


def sdk(gw: GatewayProcess, key: str) -> genai.Client:
    return genai.Client(api_key=key, http_options=types.HttpOptions(
        base_url=gw.base_url, api_version="v1beta", retry_options=types.HttpRetryOptions(attempts=1)))


@pytest.fixture
def client(igw: GatewayProcess, ikey: str) -> genai.Client:
    return sdk(igw, ikey)


def last_record(gw: GatewayProcess, count_before: int) -> dict[str, Any]:
    wait_for(lambda: len(records(gw, door="interactions")) > count_before)
    found = records(gw, door="interactions")
    assert len(found) == count_before + 1, "one record per interaction"
    return found[-1]


def texts(events: list[Any]) -> str:
    return "".join(e.delta.text for e in events if e.event_type == "step.delta" and e.delta.type == "text")


# --- the local model (translated) ---------------------------------------------------------


def test_local_unary_and_record(client: genai.Client, igw: GatewayProcess) -> None:
    before = len(records(igw, door="interactions"))
    out = client.interactions.create(model="gemma-3-270m", input="The capital of France is",
                                     generation_config={"max_output_tokens": 8})
    assert out.status in ("completed", "incomplete") and out.id
    assert out.output_text and out.steps[-1].type == "model_output"
    u = out.usage
    assert u.total_input_tokens > 0 and u.total_output_tokens > 0
    assert u.total_tokens == u.total_input_tokens + u.total_output_tokens + u.total_thought_tokens
    assert u.input_tokens_by_modality[0].modality == "text"
    rec = last_record(igw, before)
    assert (rec["model"], rec["channel"], rec["method"]) == ("gemma-3-270m", "local/gemma-3-270m", "interactions.create")
    assert rec["prompt_tokens"] == u.total_input_tokens and rec["output_text"] == u.total_output_tokens
    assert rec["status"] == "ok" and rec["streamed"] == 0


def test_local_stream_chain_and_get(client: genai.Client, igw: GatewayProcess) -> None:
    first = client.interactions.create(model="gemma-3-270m", input="Count: one, two,",
                                       generation_config={"max_output_tokens": 6})
    before = len(records(igw, door="interactions"))
    events = list(client.interactions.create(model="gemma-3-270m", input="and then", stream=True,
                                             previous_interaction_id=first.id,
                                             generation_config={"max_output_tokens": 6}))
    kinds = [e.event_type for e in events]
    assert kinds[:3] == ["interaction.created", "interaction.status_update", "step.start"]
    assert kinds[-2:] == ["interaction.status_update", "interaction.completed"] and "step.stop" in kinds
    done = events[-1].interaction
    assert done.usage.total_output_tokens > 0
    rec = last_record(igw, before)
    assert rec["streamed"] == 1 and rec["output_text"] == done.usage.total_output_tokens
    # the stored conversation has both turns; GET shows this turn's input then its output
    got = client.interactions.get(done.id)
    assert got.previous_interaction_id == first.id and got.output_text == texts(events)
    assert got.steps[0].type == "user_input" and got.steps[0].content[0].text == "and then"


# --- the Google channel (passthrough) -------------------------------------------------------


def test_google_unary_passthrough_and_chain(client: genai.Client, igw: GatewayProcess, fake_google: FakeGemini) -> None:
    before = len(records(igw, door="interactions"))
    first = client.interactions.create(model="gemini-2.5-flash", input="alpha beta")
    sent = fake_google.requests[-1]
    assert sent.path == "/v1beta/interactions" and sent.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert sent.json == {"model": "gemini-2.5-flash", "input": "alpha beta"}  # the client's bytes
    assert first.output_text == "echo: alpha beta" and first.status == "completed"
    assert first.id.startswith("v1_") and first.id not in fake_google.interactions  # the gateway's own id
    rec = last_record(igw, before)
    assert rec["channel"] == "google/gemini-2.5-flash" and rec["prompt_tokens"] == 2 and rec["output_text"] == 3
    assert first.usage.total_input_tokens == 2 and first.usage.total_output_tokens == 3

    second = client.interactions.create(model="flash-alias", input="gamma", previous_interaction_id=first.id)
    sent = fake_google.requests[-1].json
    assert sent["model"] == "gemini-2.5-flash" and "previous_interaction_id" not in sent  # mapped, inlined
    assert [s["type"] for s in sent["input"]] == ["user_input", "model_output", "user_input"]
    assert second.output_text == "echo: gamma" and second.model == "flash-alias"
    assert second.previous_interaction_id == first.id
    got = client.interactions.get(second.id, include_input=True)
    assert [s.type for s in got.steps] == ["user_input", "model_output"]


def test_google_stream_and_resume(client: genai.Client, igw: GatewayProcess) -> None:
    before = len(records(igw, door="interactions"))
    events = list(client.interactions.create(model="gemini-2.5-flash", input="one two three four", stream=True))
    assert texts(events) == "echo: one two three four"
    done = events[-1]
    assert done.event_type == "interaction.completed" and done.interaction.usage.total_output_tokens == 5
    rec = last_record(igw, before)
    assert rec["streamed"] == 1 and rec["output_text"] == 5 and rec["status"] == "ok"
    # resume after the third text delta: the rest arrives, nothing twice
    deltas = [e for e in events if e.event_type == "step.delta"]
    cut = deltas[2]
    resumed = list(client.interactions.get(done.interaction.id, stream=True, last_event_id=cut.event_id))
    assert texts(deltas[:3]) + texts(resumed) == "echo: one two three four"
    assert resumed[-1].event_type == "interaction.completed"
    assert len(records(igw, door="interactions")) == before + 1  # a replay is never billed


def test_google_faults(client: genai.Client, igw: GatewayProcess, fake_google: FakeGemini) -> None:
    fake_google.script_interaction(status=503)
    with pytest.raises(InternalServerError) as err5:
        client.interactions.create(model="gemini-2.5-flash", input="hi")
    assert err5.value.status_code == 503 and err5.value.body["error"]["code"] == "unavailable"
    # an error event mid-stream: relayed as the Interactions API's error event, billed as interrupted
    before = len(records(igw, door="interactions"))
    fake_google.script_interaction(error_after=5)
    events = list(client.interactions.create(model="gemini-2.5-flash", input="a b c d e", stream=True))
    assert events[-1].event_type == "error" and events[-1].error.code
    rec = last_record(igw, before)
    assert rec["status"] == "interrupted" and rec["interrupted"] == 1 and rec["output_text"] > 0
    # a cut connection likewise
    fake_google.script_interaction(cut_after=4)
    events = list(client.interactions.create(model="gemini-2.5-flash", input="a b c d e", stream=True))
    assert events[-1].event_type == "error"
    assert last_record(igw, before + 1)["interrupted"] == 1
    # a 429 with RetryInfo: the client is told when to come back (the upstream key rests)
    fake_google.script_interaction(status=429, retry_delay="1s")
    with pytest.raises(RateLimitError) as err:
        client.interactions.create(model="gemini-2.5-flash", input="hi")
    assert err.value.body["error"]["code"] == "resource_exhausted"
    assert err.value.response.headers["retry-after"] == "1"
    assert UPSTREAM_KEY not in err.value.response.text
    time.sleep(1.2)


# --- stored interactions: owners, store:false, delete, bad input ------------------------------


def test_other_key_store_false_and_delete(client: genai.Client, igw: GatewayProcess) -> None:
    mine = client.interactions.create(model="gemini-2.5-flash", input="secret")
    other = sdk(igw, igw.create_key("interactions-other"))
    with pytest.raises(NotFoundError) as err:
        other.interactions.get(mine.id)
    assert err.value.body["error"]["code"] == "not_found"
    with pytest.raises(NotFoundError):
        other.interactions.create(model="gemini-2.5-flash", input="x", previous_interaction_id=mine.id)
    with pytest.raises(NotFoundError):
        other.interactions.delete(mine.id)
    assert client.interactions.get(mine.id).output_text == "echo: secret"
    client.interactions.delete(mine.id)
    with pytest.raises(NotFoundError):
        client.interactions.get(mine.id)
    unstored = client.interactions.create(model="gemini-2.5-flash", input="forget me", store=False)
    assert unstored.output_text == "echo: forget me"
    with pytest.raises(NotFoundError):
        client.interactions.get(unstored.id)


def test_bad_input(client: genai.Client, igw: GatewayProcess) -> None:
    with pytest.raises(BadRequestError) as err:
        client.interactions.create(model="gemini-2.5-flash", input="x", extra_body={"bogus": 1})
    assert err.value.body["error"] == {"code": "invalid_argument", "message": err.value.body["error"]["message"]}
    assert "bogus" in err.value.body["error"]["message"]
    with pytest.raises(NotFoundError):
        client.interactions.create(model="no-such-model", input="x")
    with pytest.raises(BadRequestError) as err2:
        client.interactions.create(model="gemma-3-270m", input=[{"type": "image", "mime_type": "image/png"}])
    assert "input[0]" in err2.value.body["error"]["message"]
    # not JSON, and no key: the same envelope
    resp = httpx.post(f"{igw.base_url}/v1beta/interactions", content=b"{nope", headers={"x-goog-api-key": "x"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_argument"
    resp = httpx.post(f"{igw.base_url}/gemini/v1beta/interactions", json={"model": "gemma-3-270m", "input": "x"})
    assert resp.status_code == 403 and resp.json()["error"]["code"] == "permission_denied"


# --- background runs ----------------------------------------------------------------------


def test_background_run_and_cancel(client: genai.Client, igw: GatewayProcess, fake_google: FakeGemini) -> None:
    before = len(records(igw, door="interactions"))
    run = client.interactions.create(model="gemini-2.5-flash", input="later please", background=True)
    assert run.status == "in_progress"
    wait_for(lambda: client.interactions.get(run.id).status == "completed")
    assert client.interactions.get(run.id).output_text == "echo: later please"
    assert last_record(igw, before)["output_text"] == 3
    with pytest.raises(BadRequestError):
        client.interactions.cancel(run.id)  # done: nothing to cancel

    fake_google.set_delay(30)
    try:
        slow = client.interactions.create(model="gemini-2.5-flash", input="never mind", background=True)
        wait_for(lambda: any(r.path == "/v1beta/interactions" and r.json.get("input") and
                             json.dumps(r.json["input"]).count("never mind") for r in fake_google.requests))
        cancelled = client.interactions.cancel(slow.id)
        assert cancelled.status == "cancelled"
    finally:
        fake_google.set_delay(0)
    assert client.interactions.get(slow.id).status == "cancelled"
    rec = last_record(igw, before + 1)
    assert rec["status"] == "interrupted" and rec["interrupted"] == 1  # recorded, not lost


def test_background_stream_follows_to_the_end(client: genai.Client) -> None:
    events = list(client.interactions.create(model="gemini-2.5-flash", input="x y", background=True, stream=True))
    assert events[0].event_type == "interaction.created" and events[-1].event_type == "interaction.completed"
    assert texts(events) == "echo: x y"
    time.sleep(0)


def test_restart_records_a_running_background_call(
    client: genai.Client, igw: GatewayProcess, fake_google: FakeGemini
) -> None:
    """Stopping a replica mid-run: the paid call is recorded (interrupted) and the
    interaction is stored as cancelled, not left claiming to run."""
    before = len(records(igw, door="interactions"))
    fake_google.set_delay(30)
    try:
        run = client.interactions.create(model="gemini-2.5-flash", input="restart me", background=True)
        wait_for(lambda: any("restart me" in json.dumps(r.json) for r in fake_google.requests))
        igw.stop()
    finally:
        fake_google.set_delay(0)
    igw.start()
    assert client.interactions.get(run.id).status == "cancelled"
    rec = last_record(igw, before)
    assert rec["status"] == "interrupted" and rec["interrupted"] == 1 and rec["prompt_tokens"] > 0
