"""GET /metrics: Prometheus' text format, scraped with prometheus-client's own parser."""

from __future__ import annotations

from pathlib import Path

import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families
from tests.billing.gateways import ADMIN_KEY, MODEL, start
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess


def scrape(gw: GatewayProcess, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    resp = httpx.get(f"{gw.base_url}/metrics", headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def test_metrics_count_requests_tokens_cost_and_errors(gateway: GatewayProcess, api_key: str) -> None:
    url = f"{gateway.base_url}/v1beta/models/gemini-2.5-flash:generateContent"
    body = orjson.dumps({"contents": [{"parts": [{"text": "one two three"}]}]})
    before = scrape(gateway)
    ok = httpx.post(url, content=body, headers={"x-goog-api-key": api_key})
    assert ok.status_code == 200
    assert httpx.post(url, content=body, headers={"x-goog-api-key": "gg-bad"}).status_code == 400
    after = scrape(gateway)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    model = "google/gemini-2.5-flash"
    assert delta("gemgate_requests_total", door="gemini", model=model, status="ok") == 1
    usage = ok.json()["usageMetadata"]
    assert delta("gemgate_tokens_total", model=model, kind="prompt") == usage["promptTokenCount"]
    assert delta("gemgate_tokens_total", model=model, kind="output_text") == usage["candidatesTokenCount"]
    cost_nanos = round(float(ok.headers["x-gemgate-cost-usd"]) * 1e9)
    assert delta("gemgate_cost_nanousd_total", model=model) == cost_nanos
    assert delta("gemgate_rejected_requests_total", door="gemini", code="400") == 1
    assert delta("gemgate_request_duration_seconds_count", door="gemini") == 1


def test_metrics_need_the_admin_key_when_one_is_set(tmp_path: Path, fake_google: FakeGemini) -> None:
    gw = start(tmp_path / "gw", fake_google)
    try:
        key = gw.create_key("m")
        resp = httpx.post(
            f"{gw.base_url}/v1beta/models/{MODEL}:generateContent",
            content=b'{"contents":[{"parts":[{"text":"hi"}]}]}', headers={"x-goog-api-key": key},
        )
        assert resp.status_code == 200
        denied = httpx.get(f"{gw.base_url}/metrics", headers={"authorization": f"Bearer {key}"})
        assert denied.status_code == 403 and denied.json()["error"]["status"] == "PERMISSION_DENIED"
        samples = scrape(gw, authorization=f"Bearer {ADMIN_KEY}")
        assert samples[("gemgate_requests_total", (("door", "gemini"), ("model", MODEL), ("status", "ok")))] == 1
    finally:
        gw.stop()
