"""The admin API through the real gateway: keys, channels, usage (the numbers `gemgate
usage` gives), the request log, kept bodies, and clear errors for bad input."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import httpx
import pytest
from tests.admin.console_gateway import (
    ADMIN_KEY,
    FALLBACK_MODEL,
    MODEL,
    SECOND_KEY_VAR,
    Browser,
    admin,
    generate,
)
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess


def bad(resp: httpx.Response, code: int = 400, status: str = "INVALID_ARGUMENT") -> dict[str, Any]:
    assert resp.status_code == code, resp.text
    error = resp.json()["error"]
    assert error["status"] == status
    return error


def until(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def test_key_lifecycle(console_gw: GatewayProcess) -> None:
    api = admin(console_gw)
    created = api.post("/keys", json={
        "name": "lifecycle", "models": [MODEL], "allowed_ips": ["127.0.0.1", "10.0.0.0/8"],
        "expires_at": "2099-01-01", "budget_usd": "2.50", "rpm": 600,
    })
    assert created.status_code == 201, created.text
    assert created.headers["cache-control"] == "no-store"
    plain, record = created.json()["key"], created.json()["record"]
    assert plain.startswith(record["prefix"]) and record["status"] == "active"
    assert record["budget_nanos"] == 2_500_000_000 and record["budget_usd"] == "2.500000000"
    assert record["expires_at"] == "2099-01-01T00:00:00Z"
    assert generate(console_gw, plain).status_code == 200
    # The plain key is in the creation answer only.
    listed = api.get("/keys").json()["keys"]
    assert plain not in json.dumps(listed) and plain not in api.get(f"/keys/{record['id']}").text
    # Changes apply to the running gateway at once: a model the key may no longer use.
    changed = api.post(f"/keys/{record['id']}", json={"name": "lifecycle-2", "models": [FALLBACK_MODEL]})
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "lifecycle-2"
    assert until(lambda: generate(console_gw, plain).status_code == 403)
    cleared = api.post(f"/keys/{record['id']}", json={"models": None, "rpm": None, "budget_usd": None})
    assert cleared.json()["models"] is None and cleared.json()["rpm"] is None
    assert cleared.json()["budget_usd"] is None
    topped = api.post(f"/keys/{record['id']}/top-up", json={"usd": "1.25"})
    assert topped.json()["budget_nanos"] == 1_250_000_000
    assert until(lambda: generate(console_gw, plain).status_code == 200)
    revoked = api.post(f"/keys/{record['id']}/revoke")
    assert revoked.json()["status"] == "revoked"
    assert until(lambda: generate(console_gw, plain).status_code == 403)
    # The CLI sees what the API did.
    cli = json.loads(console_gw.cli("keys", "list", "--json").stdout)
    assert {"name": "lifecycle-2", "revoked": True} .items() <= next(
        k for k in cli if k["name"] == "lifecycle-2"
    ).items()


def test_bad_key_input_is_a_clear_error(console_gw: GatewayProcess) -> None:
    api = admin(console_gw)
    assert "name" in bad(api.post("/keys", json={}))["message"]
    assert "colour" in bad(api.post("/keys", json={"name": "x", "colour": "red"}))["message"]
    assert "budget_usd" in bad(api.post("/keys", json={"name": "x", "budget_usd": 2.5}))["message"]
    assert "budget_usd" in bad(api.post("/keys", json={"name": "x", "budget_usd": "-1"}))["message"]
    assert "nine decimals" in bad(api.post("/keys", json={"name": "x", "budget_usd": "0.0000000001"}))["message"]
    assert "allowed_ips[1]" in bad(api.post("/keys", json={"name": "x", "allowed_ips": ["::1", "nope"]}))["message"]
    assert "models[0]" in bad(api.post("/keys", json={"name": "x", "models": ["no-such-model"]}))["message"]
    assert "expires_at" in bad(api.post("/keys", json={"name": "x", "expires_at": "soon"}))["message"]
    assert "rpm" in bad(api.post("/keys", json={"name": "x", "rpm": "fast"}))["message"]
    assert "JSON" in bad(api.post("/keys", content=b"{not json", headers={"content-type": "application/json"}))["message"]
    assert "object" in bad(api.post("/keys", json=[1, 2]))["message"]
    api.post("/keys", json={"name": "taken"})
    assert "already exists" in bad(api.post("/keys", json={"name": "taken"}))["message"]
    bad(api.get("/keys/999999"), 404, "NOT_FOUND")
    assert "id" in bad(api.get("/keys/abc"))["message"]
    assert "usd" in bad(api.post("/keys/1/top-up", json={"usd": "0"}))["message"]
    bad(api.get("/nothing"), 404, "NOT_FOUND")
    bad(api.post("/keys/1/revoke/again"), 404, "NOT_FOUND")
    bad(api.post("/log"), 405, "INVALID_ARGUMENT")
    bad(api.get("/log", params={"status": "weird"}))
    bad(api.get("/log", params={"code": "2000"}))
    bad(api.get("/log", params={"key": "no-such-key"}))
    bad(api.get("/usage", params={"group_by": "week"}))
    bad(api.get("/usage", params={"since": "yesterday"}))


def test_usage_has_the_numbers_of_gemgate_usage(console_gw: GatewayProcess, fake_google: FakeGemini) -> None:
    api = admin(console_gw)
    plain = api.post("/keys", json={"name": "usage-a"}).json()["key"]
    for text in ("one two three", "four five"):
        assert generate(console_gw, plain, text=text).status_code == 200
    assert generate(console_gw, plain, FALLBACK_MODEL).status_code == 200
    for group_by in ("", "day", "hour", "model", "key", "channel"):
        params = {"group_by": group_by} if group_by else {}
        rows = api.get("/usage", params=params).json()["rows"]
        args = ["usage", "--format", "json"] + (["--group-by", group_by] if group_by else [])
        assert rows == json.loads(console_gw.cli(*args).stdout), group_by
        csv = api.get("/usage", params={**params, "format": "csv"})
        assert csv.headers["content-type"].startswith("text/csv")
        assert "attachment" in csv.headers["content-disposition"]
        cli_csv = console_gw.cli(*args[:1], "--format", "csv", *args[3:]).stdout
        assert csv.text == cli_csv, group_by
    by_channel = {r["channel"]: r for r in api.get("/usage", params={"group_by": "channel", "key": "usage-a"}).json()["rows"]}
    assert by_channel["google/gemini-2.5-flash"]["requests"] == 2
    assert by_channel["google/gemini-2.5-pro"]["requests"] == 1
    only = api.get("/usage", params={"channel": "google/gemini-2.5-pro", "key": "usage-a"}).json()["rows"]
    assert only[0]["requests"] == 1 and isinstance(only[0]["cost_nanos"], int)


def test_request_log_search_pages_and_detail(console_gw: GatewayProcess, fake_google: FakeGemini) -> None:
    api = admin(console_gw)
    plain = api.post("/keys", json={"name": "log-a"}).json()["key"]
    for i in range(7):
        assert generate(console_gw, plain, text=f"request {i}").status_code == 200
    fake_google.script(MODEL, error={"code": 500, "message": "upstream broke", "status": "INTERNAL"})
    code = generate(console_gw, plain).status_code
    assert code >= 500
    seen: list[int] = []
    before = None
    while True:
        page = api.get("/log", params={"key": "log-a", "limit": 3, **({"before": before} if before else {})}).json()
        seen += [r["id"] for r in page["rows"]]
        assert all(r["key_name"] == "log-a" for r in page["rows"])
        before = page["next"]
        if before is None:
            break
    assert len(seen) == 8 and seen == sorted(seen, reverse=True)
    failed = api.get("/log", params={"key": "log-a", "status": "failed"}).json()["rows"]
    assert len(failed) == 1 and failed[0]["http_status"] == code and failed[0]["status"] == "error"
    piece = failed[0]["error"][3:15].upper()
    assert failed[0]["id"] in [r["id"] for r in api.get("/log", params={"error": piece}).json()["rows"]]
    assert api.get("/log", params={"key": "log-a", "code": code}).json()["rows"][0]["id"] == failed[0]["id"]
    for name, value in (("model", MODEL), ("channel", "google/gemini-2.5-flash"), ("door", "gemini"),
                        ("method", "generateContent"), ("since", "2000-01-01")):
        rows = api.get("/log", params={"key": "log-a", name: value}).json()["rows"]
        assert len(rows) == 8, name
    assert api.get("/log", params={"until": "2000-01-01"}).json()["rows"] == []
    detail = api.get(f"/log/{seen[1]}").json()
    assert detail["request_id"] and detail["cost_usd"] and detail["attempts"] == 1
    assert detail["bodies"] is None  # this key does not keep bodies
    bad(api.get("/log/99999999"), 404, "NOT_FOUND")


def test_bodies_are_kept_only_when_asked_and_redacted(console_gw: GatewayProcess) -> None:
    api = admin(console_gw)
    created = api.post("/keys", json={"name": "bodies", "log_bodies": True}).json()
    image = base64.b64encode(bytes(range(256)) * 40).decode()
    body = {
        "contents": [{"role": "user", "parts": [
            {"text": "my key is AIzaSyD-secret-value-0123456789 and gg-abcdefghijklmnopqrstuvwxyz, "
                     "sk-live-should-not-be-kept, Authorization: Bearer hunter2hunter2"},
            {"inlineData": {"mimeType": "image/png", "data": image}},
        ]}],
    }
    resp = httpx.post(f"{console_gw.base_url}/v1beta/models/{MODEL}:generateContent",
                      headers={"x-goog-api-key": created["key"]}, json=body, timeout=30)
    record_id = api.get("/log", params={"key": "bodies"}).json()["rows"][0]["id"]
    detail = until(lambda: (d := api.get(f"/log/{record_id}").json())["bodies"] and d)
    assert detail, "the bodies were not written"
    stored = detail["bodies"]["request"] + detail["bodies"]["response"]
    for secret in ("AIzaSyD-secret-value", "gg-abcdefghijklmnopqrstuvwxyz", "sk-live-should-not-be-kept",
                   "hunter2hunter2", image[:64], created["key"]):
        assert secret not in stored
    assert "redacted" in stored and "image/png" in stored
    assert resp.status_code == 200, resp.text
    # Another key's bodies are not kept.
    other = api.post("/keys", json={"name": "no-bodies"}).json()["key"]
    assert generate(console_gw, other).status_code == 200
    time.sleep(0.5)
    rid = api.get("/log", params={"key": "no-bodies"}).json()["rows"][0]["id"]
    assert api.get(f"/log/{rid}").json()["bodies"] is None


def test_channels_and_upstream_keys_turn_off_and_on(console_gw: GatewayProcess, fake_google: FakeGemini) -> None:
    browser = Browser(console_gw)
    plain = admin(console_gw).post("/keys", json={"name": "switches"}).json()["key"]
    listed = browser.get("/channels").json()
    google = next(p for p in listed["providers"] if p["name"] == "google")
    assert [k["label"] for k in google["keys"]] == [UPSTREAM_KEY_VAR, SECOND_KEY_VAR]
    assert fake_google.api_key not in json.dumps(listed)
    # An upstream key turned off is skipped: every call goes out with the other one.
    for label, other in ((UPSTREAM_KEY_VAR, SECOND_KEY_VAR), (SECOND_KEY_VAR, UPSTREAM_KEY_VAR)):
        assert browser.post("/upstream-keys/state", {"provider": "google", "key": label, "enabled": False}).status_code == 200
        for _ in range(3):
            assert generate(console_gw, plain).status_code == 200
        rows = admin(console_gw).get("/log", params={"key": "switches", "limit": 3}).json()["rows"]
        assert {r["upstream_key"] for r in rows} == {other}
        assert browser.post("/upstream-keys/state", {"provider": "google", "key": label, "enabled": True}).status_code == 200
    # Both off: the channel has no key left.
    for label in (UPSTREAM_KEY_VAR, SECOND_KEY_VAR):
        browser.post("/upstream-keys/state", {"provider": "google", "key": label, "enabled": False})
    refused = generate(console_gw, plain)
    assert refused.status_code == 503 and "turned off" in refused.json()["error"]["message"]
    for label in (UPSTREAM_KEY_VAR, SECOND_KEY_VAR):
        browser.post("/upstream-keys/state", {"provider": "google", "key": label, "enabled": True})
    # A channel turned off: its model fails over to the next channel, or is refused.
    assert browser.post("/channels/state", {"channel": "google/gemini-2.5-pro", "enabled": False}).json() == {
        "channel": "google/gemini-2.5-pro", "enabled": False}
    assert generate(console_gw, plain, FALLBACK_MODEL).status_code == 200
    row = admin(console_gw).get("/log", params={"key": "switches", "limit": 1}).json()["rows"][0]
    assert row["channel"] == "google-b/gemini-2.5-pro"
    state = {c["channel"]: c["enabled"] for c in browser.get("/channels").json()["channels"]}
    assert state["google/gemini-2.5-pro"] is False
    browser.post("/channels/state", {"channel": "google/gemini-2.5-flash", "enabled": False})
    assert generate(console_gw, plain).status_code == 503
    browser.post("/channels/state", {"channel": "google/gemini-2.5-flash", "enabled": True})
    browser.post("/channels/state", {"channel": "google/gemini-2.5-pro", "enabled": True})
    assert generate(console_gw, plain).status_code == 200
    bad(browser.post("/channels/state", {"channel": "nope/nothing", "enabled": False}), 404, "NOT_FOUND")
    bad(browser.post("/channels/state", {"channel": "google/gemini-2.5-pro"}))
    bad(browser.post("/upstream-keys/state", {"provider": "google", "key": "NOPE", "enabled": True}), 404, "NOT_FOUND")


@pytest.mark.parametrize("path", ["/keys", "/channels", "/usage", "/log", "/openapi.json"])
def test_answers_carry_no_secret(console_gw: GatewayProcess, fake_google: FakeGemini, path: str) -> None:
    text = admin(console_gw).get(path).text
    assert ADMIN_KEY not in text and fake_google.api_key not in text
