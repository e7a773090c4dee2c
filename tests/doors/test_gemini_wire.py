"""The Gemini door over raw HTTP: auth forms, prefixes, paths, casings and every error row."""

from __future__ import annotations

import base64
import time

import httpx
import orjson
import pytest
from tests.conftest import UPSTREAM_KEY
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import GatewayProcess

HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello there"}]}]}


def post(gw: GatewayProcess, path: str, body: object = HELLO, **kw: object) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    headers = {"content-type": "application/json", **kw.pop("headers", {})}  # type: ignore[dict-item]
    return httpx.post(gw.base_url + path, content=content, headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


def assert_google_error(resp: httpx.Response, code: int, status: str) -> dict:
    assert resp.status_code == code, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert err["code"] == code
    assert err["status"] == status
    assert err["message"]
    return err


# --- authentication ------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["header", "query", "bearer"])
def test_three_auth_forms(gateway: GatewayProcess, api_key: str, fake_google: FakeGemini, form: str) -> None:
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    headers = {}
    if form == "header":
        headers["x-goog-api-key"] = api_key
    elif form == "bearer":
        headers["authorization"] = f"Bearer {api_key}"
    else:
        path += f"?key={api_key}"
    resp = post(gateway, path, headers=headers)
    assert resp.status_code == 200, resp.text
    assert resp.json()["candidates"][0]["content"]["parts"][0]["text"] == "echo: hello there"
    # The upstream saw the provider's key, never the client's.
    seen = fake_google.requests[-1]
    assert seen.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert api_key not in str(seen.headers) and api_key not in seen.path + str(seen.query)


def test_bad_key(gateway: GatewayProcess) -> None:
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", headers={"x-goog-api-key": "gg-nope"})
    err = assert_google_error(resp, 400, "INVALID_ARGUMENT")
    assert err["message"] == "API key not valid. Please pass a valid API key."
    assert err["details"][0]["reason"] == "API_KEY_INVALID"


def test_no_key(gateway: GatewayProcess) -> None:
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent")
    err = assert_google_error(resp, 403, "PERMISSION_DENIED")
    assert "unregistered callers" in err["message"]


def test_key_not_allowed_model(gateway: GatewayProcess, new_key) -> None:  # type: ignore[no-untyped-def]
    key = new_key("--models", "gemma-3-270m")
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", headers={"x-goog-api-key": key})
    err = assert_google_error(resp, 403, "PERMISSION_DENIED")
    assert "may not use model google/gemini-2.5-flash" in err["message"]
    # ...and the model list shows only what the key may use.
    listed = httpx.get(f"{gateway.base_url}/v1beta/models", headers={"x-goog-api-key": key}).json()
    assert [m["name"] for m in listed["models"]] == ["models/gemma-3-270m"]


def test_expired_key(gateway: GatewayProcess, new_key) -> None:  # type: ignore[no-untyped-def]
    key = new_key("--expires", "2020-01-01")
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", headers={"x-goog-api-key": key})
    err = assert_google_error(resp, 403, "PERMISSION_DENIED")
    assert "expired" in err["message"]


def test_ip_not_allowed(gateway: GatewayProcess, new_key) -> None:  # type: ignore[no-untyped-def]
    key = new_key("--allow-ip", "10.9.8.0/24")
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", headers={"x-goog-api-key": key})
    err = assert_google_error(resp, 403, "PERMISSION_DENIED")
    assert "127.0.0.1" in err["message"]
    ok_key = new_key("--allow-ip", "127.0.0.0/8")
    assert post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", headers={"x-goog-api-key": ok_key}).status_code == 200


def test_revoke_takes_effect_on_running_server(gateway: GatewayProcess) -> None:
    key = gateway.create_key("to-revoke")
    path = "/v1beta/models/gemini-2.5-flash:generateContent"
    assert post(gateway, path, headers={"x-goog-api-key": key}).status_code == 200
    gateway.cli("keys", "revoke", "to-revoke")
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        resp = post(gateway, path, headers={"x-goog-api-key": key})
        if resp.status_code != 200:
            break
        time.sleep(0.05)
    err = assert_google_error(resp, 403, "PERMISSION_DENIED")
    assert "revoked" in err["message"]


# --- paths ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1beta/models/gemini-2.5-flash:generateContent",
        "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1/models/gemini-2.5-flash:generateContent",
        "/gemini/v1/models/google/gemini-2.5-flash:generateContent",
        "/v1beta/models/google/gemini-2.5-flash:generateContent",
        "/v1beta/models/google/gemini-2.5-flash%3AgenerateContent",
        "/v1beta/models/google%2Fgemini-2.5-flash%3agenerateContent",
    ],
)
def test_paths(gateway: GatewayProcess, api_key: str, fake_google: FakeGemini, path: str) -> None:
    resp = post(gateway, path, headers={"x-goog-api-key": api_key})
    assert resp.status_code == 200, resp.text
    # The upstream is called with the upstream model name.
    assert fake_google.requests[-1].path == "/v1beta/models/gemini-2.5-flash:generateContent"


def test_dotdot_rejected(gateway: GatewayProcess, api_key: str) -> None:
    resp = post(gateway, "/v1beta/models/google/%2E%2E/x:generateContent", headers={"x-goog-api-key": api_key})
    assert_google_error(resp, 400, "INVALID_ARGUMENT")


def test_unknown_model(gateway: GatewayProcess, api_key: str) -> None:
    resp = post(gateway, "/v1beta/models/no-such-model:generateContent", headers={"x-goog-api-key": api_key})
    err = assert_google_error(resp, 404, "NOT_FOUND")
    assert "models/no-such-model is not found for API version v1beta" in err["message"]


def test_unknown_method(gateway: GatewayProcess, api_key: str) -> None:
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:frobnicate", headers={"x-goog-api-key": api_key})
    assert_google_error(resp, 404, "NOT_FOUND")


def test_unknown_path(gateway: GatewayProcess, api_key: str) -> None:
    resp = httpx.get(f"{gateway.base_url}/nothing/here", headers={"x-goog-api-key": api_key})
    assert_google_error(resp, 404, "NOT_FOUND")


def test_method_unsupported_by_model(gateway: GatewayProcess, api_key: str) -> None:
    resp = post(
        gateway, "/v1beta/models/gemini-2.5-flash:embedContent",
        {"content": {"parts": [{"text": "x"}]}}, headers={"x-goog-api-key": api_key},
    )
    err = assert_google_error(resp, 404, "NOT_FOUND")
    assert "not supported for embedContent" in err["message"]


# --- bodies --------------------------------------------------------------------------------


def test_both_casings_and_urlsafe_base64(gateway: GatewayProcess, api_key: str, fake_google: FakeGemini) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + (64).to_bytes(4, "big") * 2 + b"\x08\x02\x00\x00\x00" + b"\xff\xfe\xfd" * 10
    body = {
        "system_instruction": {"parts": [{"text": "be brief"}]},
        "contents": [{"role": "user", "parts": [
            {"text": "describe"},
            {"inline_data": {"mime_type": "image/png", "data": base64.urlsafe_b64encode(png).decode().rstrip("=")}},
        ]}],
        "generationConfig": {"max_output_tokens": 50, "temperature": 0.5},
        "safety_settings": [{"category": 7, "threshold": "BLOCK_NONE"}],
    }
    raw = orjson.dumps(body)
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", raw, headers={"x-goog-api-key": api_key})
    assert resp.status_code == 200, resp.text
    # The original bytes were forwarded unchanged.
    assert fake_google.requests[-1].body == raw


def test_malformed_json(gateway: GatewayProcess, api_key: str) -> None:
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", b'{"contents": [', headers={"x-goog-api-key": api_key})
    err = assert_google_error(resp, 400, "INVALID_ARGUMENT")
    assert "Invalid JSON payload" in err["message"]


def test_unknown_field_named(gateway: GatewayProcess, api_key: str) -> None:
    body = {**HELLO, "generationConfig": {"temprature": 1}}
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", body, headers={"x-goog-api-key": api_key})
    err = assert_google_error(resp, 400, "INVALID_ARGUMENT")
    assert "temprature" in err["message"]
    violation = err["details"][0]["fieldViolations"][0]
    assert violation["field"] == "generationConfig.temprature"


def test_wrong_type_named(gateway: GatewayProcess, api_key: str) -> None:
    body = {"contents": [{"parts": [{"text": 5}]}]}
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", body, headers={"x-goog-api-key": api_key})
    err = assert_google_error(resp, 400, "INVALID_ARGUMENT")
    assert err["details"][0]["fieldViolations"][0]["field"] == "contents[0].parts[0].text"


def test_out_of_range_named(gateway: GatewayProcess, api_key: str) -> None:
    body = {**HELLO, "generationConfig": {"temperature": 3}}
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", body, headers={"x-goog-api-key": api_key})
    err = assert_google_error(resp, 400, "INVALID_ARGUMENT")
    assert "generationConfig.temperature" in err["message"]


def test_malformed_base64(gateway: GatewayProcess, api_key: str) -> None:
    body = {"contents": [{"parts": [{"inlineData": {"mimeType": "image/png", "data": "@@not base64@@"}}]}]}
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", body, headers={"x-goog-api-key": api_key})
    err = assert_google_error(resp, 400, "INVALID_ARGUMENT")
    assert "contents[0].parts[0].inlineData.data" in err["message"]


def test_empty_contents(gateway: GatewayProcess, api_key: str) -> None:
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", {"contents": []}, headers={"x-goog-api-key": api_key})
    assert_google_error(resp, 400, "INVALID_ARGUMENT")


def test_oversize_body(gateway: GatewayProcess, api_key: str) -> None:
    big = {"contents": [{"parts": [{"text": "x" * (3 * 1024 * 1024)}]}]}
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", big, headers={"x-goog-api-key": api_key})
    err = assert_google_error(resp, 413, "INVALID_ARGUMENT")
    assert "2097152 bytes" in err["message"]


# --- upstream errors -------------------------------------------------------------------------


def test_upstream_client_error_relayed(gateway: GatewayProcess, api_key: str, fake_google: FakeGemini) -> None:
    fake_google.script(
        "gemini-2.5-flash",
        status=400,
        error={"code": 400, "message": "Unable to process input image.", "status": "INVALID_ARGUMENT"},
    )
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", headers={"x-goog-api-key": api_key})
    err = assert_google_error(resp, 400, "INVALID_ARGUMENT")
    assert err["message"] == "Unable to process input image."


@pytest.mark.parametrize("status,code,name", [(503, 503, "UNAVAILABLE"), (500, 502, "UNAVAILABLE"), (504, 504, "DEADLINE_EXCEEDED")])
def test_upstream_failure_after_retries(gateway: GatewayProcess, api_key: str, fake_google: FakeGemini, status: int, code: int, name: str) -> None:
    fake_google.script("gemini-2.5-flash", status=status, error={"code": status, "message": "boom", "status": "X"})
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", headers={"x-goog-api-key": api_key})
    assert_google_error(resp, code, name)
    assert "Traceback" not in resp.text


# --- models ----------------------------------------------------------------------------------


def test_models_pagination(gateway: GatewayProcess, api_key: str) -> None:
    h = {"x-goog-api-key": api_key}
    first = httpx.get(f"{gateway.base_url}/v1beta/models?pageSize=2", headers=h).json()
    assert len(first["models"]) == 2 and "nextPageToken" in first
    names = [m["name"] for m in first["models"]]
    token = first["nextPageToken"]
    while token:
        page = httpx.get(f"{gateway.base_url}/gemini/v1beta/models", params={"pageSize": 2, "pageToken": token}, headers=h).json()
        names += [m["name"] for m in page["models"]]
        token = page.get("nextPageToken")
    assert names == [
        "models/google/gemini-2.5-flash", "models/gemini-2.5-pro", "models/gemini-2.5-flash-image",
        "models/gemini-embedding-001", "models/gemma-3-270m", "models/gpt-4o-mini", "models/oai/mini",
    ]
    bad = httpx.get(f"{gateway.base_url}/v1beta/models?pageToken=zzz", headers=h)
    assert_google_error(bad, 400, "INVALID_ARGUMENT")


def test_get_model_with_slash(gateway: GatewayProcess, api_key: str) -> None:
    resp = httpx.get(f"{gateway.base_url}/v1beta/models/google/gemini-2.5-flash", headers={"x-goog-api-key": api_key})
    assert resp.status_code == 200
    model = resp.json()
    assert model["name"] == "models/google/gemini-2.5-flash"
    assert model["inputTokenLimit"] == 1048576
    assert "generateContent" in model["supportedGenerationMethods"]
    missing = httpx.get(f"{gateway.base_url}/v1beta/models/nope", headers={"x-goog-api-key": api_key})
    assert_google_error(missing, 404, "NOT_FOUND")


def test_response_headers(gateway: GatewayProcess, api_key: str) -> None:
    resp = post(gateway, "/v1beta/models/gemini-2.5-flash:generateContent", headers={"x-goog-api-key": api_key})
    assert len(resp.headers["x-gemgate-request-id"]) == 24
    assert resp.headers["x-gemgate-cost-usd"].startswith("0.")
