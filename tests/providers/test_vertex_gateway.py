"""A real gateway process with a Vertex AI channel and an AI Studio channel of the same model,
driven by the real google-genai and openai SDKs: Vertex serves both doors, failover moves
to AI Studio, service tiers and continued answers are billed to the nano-dollar, and a
price change in an operator's price file takes effect at its date without touching earlier
records."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google import genai
from google.genai import types
from openai import OpenAI
from tests.billing.gateways import records
from tests.fakes.gemini_upstream import FakeGemini
from tests.fakes.vertex_upstream import FakeVertex
from tests.gateway_process import GatewayProcess

STUDIO_KEY = "AIzaSyFAKE-studio-0123456789abcdef"
EMAIL = "gateway@fake-project.iam.gserviceaccount.com"
UPSTREAM = "gemini-2.5-flash"
USAGE = {"promptTokenCount": 1000, "candidatesTokenCount": 200, "thoughtsTokenCount": 50,
         "totalTokenCount": 1250}
# gemini-2.5-flash in the bundled catalog: $0.30 input and $2.50 output per 1M tokens, i.e.
# 300 and 2500 nanos a token; flex half, priority x1.8. 1000 prompt + 250 output tokens:
STANDARD_NANOS = 1000 * 300 + 250 * 2500
FLEX_NANOS = 1000 * 150 + 250 * 1250
PRIORITY_NANOS = 1000 * 540 + 250 * 4500

CONFIG = """
[server]
host = "127.0.0.1"
port = {{PORT}}
upstream_timeout_s = 10

[database]
url = "sqlite:///{{DIR}}/gemgate.db"

[routing]
circuit_failures = 0

[[providers]]
name = "vertex"
type = "vertex"
project = "{project}"
location = "{location}"
base_url = "{vertex}"
credentials_file = "{{DIR}}/service-account.json"

[[providers]]
name = "studio"
type = "gemini"
base_url = "{studio}"
api_key = "env:STUDIO_KEY"

[[models]]
id = "flash"
catalog = "gemini-2.5-flash"
channels = [
  {{ provider = "vertex", upstream_model = "gemini-2.5-flash", priority = 0 }},
  {{ provider = "studio", upstream_model = "gemini-2.5-flash", priority = 1 }},
]

[[models]]
id = "studio-flash"
catalog = "gemini-2.5-flash"
provider = "studio"
upstream_model = "gemini-2.5-flash"

[[models]]
id = "vertex-embedding"
catalog = "gemini-embedding-001"
provider = "vertex"
upstream_model = "text-embedding-005"
"""


def events(pieces: list[str], usage: dict[str, int] | None = None, finish: str = "STOP",
           **candidate: Any) -> list[dict[str, Any]]:
    out = []
    for i, piece in enumerate(pieces):
        cand: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}
        last = i == len(pieces) - 1
        if last:
            cand.update(finishReason=finish, **candidate)
        meta = usage if usage and last else {"promptTokenCount": 4, "candidatesTokenCount": i + 1,
                                              "totalTokenCount": 5 + i}
        out.append({"candidates": [cand], "usageMetadata": meta, "modelVersion": UPSTREAM})
    return out


class Deployment:
    def __init__(self, gw: GatewayProcess, vertex: FakeVertex, studio: FakeGemini, key: str) -> None:
        self.gw, self.vertex, self.studio, self.key = gw, vertex, studio, key
        self.db = f"sqlite:///{gw.workdir}/gemgate.db"

    def genai(self) -> genai.Client:
        # Kept: a client that is garbage-collected closes its connection pool.
        self._sdk = genai.Client(api_key=self.key, http_options={  # type: ignore[arg-type]
            "base_url": self.gw.base_url + "/gemini", "api_version": "v1beta"})
        return self._sdk

    def openai(self) -> OpenAI:
        return OpenAI(api_key=self.key, base_url=self.gw.base_url + "/v1", max_retries=0)

    def record(self, request_id: str) -> dict[str, Any]:
        rows = records(self.db, request_id=request_id)
        assert len(rows) == 1, rows
        return rows[0]

    def records_since(self, count: int) -> list[dict[str, Any]]:
        return records(self.db)[count:]


def start(workdir: Path, vertex: FakeVertex, studio: FakeGemini, extra: str = "") -> GatewayProcess:
    (workdir / "service-account.json").write_text(vertex.new_account(EMAIL))
    text = CONFIG.format(project=vertex.project, location=vertex.location,
                         vertex=vertex.base_url, studio=studio.base_url) + extra
    return GatewayProcess(workdir, text, env={"STUDIO_KEY": STUDIO_KEY}).start()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    with FakeVertex() as vertex, FakeGemini(STUDIO_KEY) as studio:
        gw = start(tmp_path_factory.mktemp("vertex-gateway"), vertex, studio)
        try:
            yield Deployment(gw, vertex, studio, gw.create_key("vertex-e2e"))
        finally:
            gw.stop()


@pytest.fixture(autouse=True)
def _fresh(deployment: Deployment) -> None:
    deployment.vertex.reset()
    deployment.studio.reset()


def request_id(response: Any) -> str:
    return str(response.sdk_http_response.headers["x-gemgate-request-id"])


def test_the_genai_sdk_is_served_by_vertex(deployment: Deployment) -> None:
    sdk = deployment.genai()
    reply = sdk.models.generate_content(model="flash", contents="Hello!")
    assert reply.text == "vertex: Hello!"
    row = deployment.record(request_id(reply))
    assert (row["channel"], row["upstream_key"]) == ("vertex/gemini-2.5-flash", EMAIL)
    assert (row["price_version"], row["service_tier"]) == ("2026-12-03@base", "standard")
    sent = deployment.vertex.calls[-1]
    assert sent.token in deployment.vertex.tokens_of(EMAIL)  # a token minted for our account
    assert sent.json["contents"] == [{"role": "user", "parts": [{"text": "Hello!"}]}]

    text = "".join(c.text or "" for c in sdk.models.generate_content_stream(
        model="flash", contents="Count to three"))
    assert text == "vertex: Count to three"
    embedded = sdk.models.embed_content(model="vertex-embedding", contents=["sea", "sky"])
    assert embedded.embeddings is not None and len(embedded.embeddings) == 2
    assert deployment.vertex.calls[-1].rpc == "predict"
    assert deployment.studio.requests == []
    for token in deployment.vertex.tokens_of(EMAIL):
        assert token not in deployment.gw.log.read_text()


def test_the_openai_sdk_is_served_by_vertex(deployment: Deployment) -> None:
    client = deployment.openai()
    reply = client.chat.completions.create(
        model="flash", messages=[{"role": "user", "content": "Hi there"}], max_tokens=16)
    assert reply.choices[0].message.content == "vertex: Hi there"
    stream = client.chat.completions.create(
        model="flash", messages=[{"role": "user", "content": "Hi again"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "vertex: Hi again"
    assert chunks[-1].usage is not None
    assert [c.rpc for c in deployment.vertex.calls] == ["generateContent", "streamGenerateContent"]


def test_failover_from_vertex_to_ai_studio(deployment: Deployment) -> None:
    sdk = deployment.genai()
    deployment.vertex.script(status=503, error={"message": "The model is overloaded."})
    reply = sdk.models.generate_content(model="flash", contents="Hello!")
    assert reply.text == "echo: Hello!"  # AI Studio's fake answers "echo"
    row = deployment.record(request_id(reply))
    assert row["channel"] == "studio/gemini-2.5-flash"
    assert [a["channel"] for a in json.loads(row["failed_attempts"])] == ["vertex/gemini-2.5-flash"]

    # Vertex calls our token expired: this request fails over, the next mints a new token.
    deployment.vertex.expire_tokens()
    mints = len(deployment.vertex.mints)
    assert sdk.models.generate_content(model="flash", contents="One").text == "echo: One"
    assert sdk.models.generate_content(model="flash", contents="Two").text == "vertex: Two"
    assert len(deployment.vertex.mints) == mints + 1

    # A 429 with RetryInfo rests the service account; AI Studio answers meanwhile.
    deployment.vertex.script(status=429, error={"message": "Quota exceeded.", "details": [
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1s"}]})
    assert sdk.models.generate_content(model="flash", contents="Three").text == "echo: Three"
    assert sdk.models.generate_content(model="flash", contents="Four").text == "echo: Four"
    time.sleep(1.2)
    assert sdk.models.generate_content(model="flash", contents="Five").text == "vertex: Five"


@pytest.mark.parametrize(
    ("tier", "nanos", "traffic"),
    [("flex", FLEX_NANOS, "flex"), ("priority", PRIORITY_NANOS, "priority")],
)
def test_vertex_tiers_bill_the_catalog_to_the_nano(
    deployment: Deployment, tier: str, nanos: int, traffic: str
) -> None:
    deployment.vertex.script(stream=events(["A ", "tiered answer."], USAGE))
    reply = deployment.genai().models.generate_content(
        model="flash", contents="Hello!", config=types.GenerateContentConfig(service_tier=tier))
    assert deployment.vertex.calls[-1].headers["x-vertex-ai-llm-shared-request-type"] == traffic
    assert reply.usage_metadata is not None
    row = deployment.record(request_id(reply))
    assert (row["service_tier"], row["cost_nanos"]) == (tier, nanos)
    headers = reply.sdk_http_response.headers
    assert headers["x-gemini-service-tier"] == tier
    assert headers["x-gemgate-cost-usd"] == f"0.{nanos:09d}"


def test_the_tier_ai_studio_reports_wins_and_reaches_the_client(deployment: Deployment) -> None:
    # Asked for Priority, served (and billed) at Standard: Google's graceful downgrade.
    deployment.studio.script(UPSTREAM, stream=events(["Downgraded."], USAGE),
                             headers={"x-gemini-service-tier": "standard"})
    reply = deployment.genai().models.generate_content(
        model="studio-flash", contents="Hi", config=types.GenerateContentConfig(service_tier="priority"))
    assert deployment.studio.requests[-1].json["serviceTier"] == "priority"
    assert reply.sdk_http_response.headers["x-gemini-service-tier"] == "standard"
    row = deployment.record(request_id(reply))
    assert (row["service_tier"], row["cost_nanos"]) == ("standard", STANDARD_NANOS)


def test_a_continued_answer_is_billed_hop_by_hop(deployment: Deployment) -> None:
    first = {"promptTokenCount": 1000, "candidatesTokenCount": 200, "totalTokenCount": 1200}
    second = {"promptTokenCount": 1200, "candidatesTokenCount": 100, "totalTokenCount": 1300}
    token = "aG9wLXR3bw=="  # what the upstream hands back, opaque
    deployment.studio.script(UPSTREAM, stream=events(["The first half, "], first, "CONTINUATION",
                                                     continuationToken=token))
    deployment.studio.script(UPSTREAM, stream=events(["the second half."], second))
    before = len(records(deployment.db))
    reply = deployment.genai().models.generate_content(model="studio-flash", contents="Go on")
    assert reply.text == "The first half, the second half."  # the SDK joined the hops
    hops = deployment.studio.requests
    assert "continuationToken" not in hops[0].json and hops[1].json["continuationToken"] == token
    rows = deployment.records_since(before)
    assert [r["cost_nanos"] for r in rows] == [1000 * 300 + 200 * 2500, 1200 * 300 + 100 * 2500]
    assert all(r["price_version"] == "2026-12-03@base" for r in rows)


def test_unknown_fields_and_finish_reasons_pass_the_openai_door(deployment: Deployment) -> None:
    novel = events(["Something new."], USAGE, "ESCALATION", brandNewField={"x": 1})
    novel[0]["modelStatus"] = {"state": "NEW"}
    deployment.studio.script(UPSTREAM, stream=novel)
    reply = deployment.openai().chat.completions.create(
        model="studio-flash", messages=[{"role": "user", "content": "Hi"}])
    assert (reply.choices[0].message.content, reply.choices[0].finish_reason) == ("Something new.", "stop")
    deployment.studio.script(UPSTREAM, stream=events(["To be ", "continued"], USAGE, "CONTINUATION",
                                                     continuationToken="dG9rZW4="))
    chunks = list(deployment.openai().chat.completions.create(
        model="studio-flash", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    # ... and the Gemini door relays them untouched.
    deployment.studio.script(UPSTREAM, stream=novel)
    raw = httpx.post(f"{deployment.gw.base_url}/v1beta/models/studio-flash:generateContent",
                     headers={"x-goog-api-key": deployment.key},
                     json={"contents": [{"parts": [{"text": "Hi"}]}]}, timeout=30).json()
    assert raw["modelStatus"] == {"state": "NEW"}
    assert raw["candidates"][0]["finishReason"] == "ESCALATION"
    assert raw["candidates"][0]["brandNewField"] == {"x": 1}


def test_a_price_change_takes_effect_at_its_date(tmp_path: Path) -> None:
    change = (datetime.now(UTC) + timedelta(seconds=6)).replace(microsecond=0)
    stamp = change.strftime("%Y-%m-%dT%H:%M:%SZ")
    (tmp_path / "prices.toml").write_text(
        'version = "ops-2026-12"\nsource = "operator"\n'
        '[models."gemini-2.5-flash".price]\ninput = "0.30"\noutput = "2.50"\n'
        f'[[models."gemini-2.5-flash".price_changes]]\nfrom = {stamp}\n'
        'input = "0.60"\noutput = "5.00"\n'
    )
    extra = f'\n[catalog]\nprices_file = "{tmp_path}/prices.toml"\n'
    with FakeVertex() as vertex, FakeGemini(STUDIO_KEY) as studio:
        gw = start(tmp_path, vertex, studio, extra)
        try:
            shown = gw.cli("models", "prices", "--json").stdout
            flash = [r for r in json.loads(shown) if r["model"] == "flash"]
            assert {r["tier"]: r["rates"]["input"] for r in flash} == {
                "standard": "0.30", "flex": "0.150", "priority": "0.540", "batch": "0.150"}
            assert flash[0]["version"] == "ops-2026-12@base"
            assert flash[0]["next_change"] == change.isoformat()
            dep = Deployment(gw, vertex, studio, gw.create_key("prices"))
            vertex.script(stream=events(["Before."], USAGE))
            before = dep.record(request_id(dep.genai().models.generate_content(
                model="flash", contents="Hi")))
            time.sleep(max(0.0, (change - datetime.now(UTC)).total_seconds()) + 0.5)
            vertex.script(stream=events(["After."], USAGE))
            after = dep.record(request_id(dep.genai().models.generate_content(
                model="flash", contents="Hi")))
            assert (before["price_version"], before["cost_nanos"]) == ("ops-2026-12@base", STANDARD_NANOS)
            assert (after["price_version"], after["cost_nanos"]) == (
                f"ops-2026-12@{stamp}", 2 * STANDARD_NANOS)
            assert dep.record(before["request_id"])["cost_nanos"] == STANDARD_NANOS  # history kept
        finally:
            gw.stop()
