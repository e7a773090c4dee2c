"""Every admin API route refuses callers without the admin key or a session, wrong keys
(rate limited, logged without the key), cookie calls without the CSRF token or Origin,
and anything another site sends; the session cookie is out of scripts' and other sites'
reach; without an admin key the console is off and says so."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from tests.admin.console_gateway import ADMIN_KEY, Browser, config, start
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

from gemgate.admin.api_routes import api_routes

ROUTES = [(r.method, r.pattern.replace("{id}", "1")) for r in api_routes(
    session=type("S", (), {"sign_in": 0, "session": 0, "sign_out": 0})(),
    keys=type("K", (), {n: 0 for n in ("list", "create", "get", "update", "revoke", "top_up")})(),
    channels=type("C", (), {"list": 0, "set_channel": 0, "set_key": 0})(),
    usage=type("U", (), {"report": 0})(),
    log=type("L", (), {"search": 0, "get": 0})(),
    openapi=type("O", (), {"openapi": 0})(),
)]
STATE_CHANGING = [(m, p) for m, p in ROUTES if m == "POST" and p != "/session"]


def call(gw: GatewayProcess, method: str, path: str, **kw: object) -> httpx.Response:
    return httpx.request(method, f"{gw.base_url}/admin/api{path}", timeout=30, **kw)  # type: ignore[arg-type]


@pytest.fixture
def fresh_gw(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    proc = start(tmp_path_factory.mktemp("console-guard"), fake_google)
    yield proc
    proc.stop()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_credentials_are_refused(console_gw: GatewayProcess, method: str, path: str) -> None:
    resp = call(console_gw, method, path, json={})
    assert resp.status_code == 401, resp.text
    assert resp.json()["error"]["status"] == "UNAUTHENTICATED"
    # A cookie that names no session is no better.
    resp = call(console_gw, method, path, json={}, headers={"cookie": "gemgate_session=made-up"})
    assert resp.status_code == 401, resp.text


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_foreign_origins_are_refused_even_with_the_key(console_gw: GatewayProcess, method: str, path: str) -> None:
    browser = Browser(console_gw)
    for headers in ({"origin": "https://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"},
                    {"sec-fetch-site": "same-site"}):
        with_key = call(console_gw, method, path, json={}, headers={"authorization": f"Bearer {ADMIN_KEY}", **headers})
        assert with_key.status_code == 403, (headers, with_key.text)
        assert with_key.json()["error"]["details"][0]["reason"] == "CROSS_SITE_REQUEST"
        with_session = browser.client.request(method, path, json={}, headers={"x-gemgate-csrf": browser.csrf, **headers})
        assert with_session.status_code == 403, (headers, with_session.text)


@pytest.mark.parametrize(("method", "path"), STATE_CHANGING)
def test_cookie_calls_need_the_csrf_token_and_origin(console_gw: GatewayProcess, method: str, path: str) -> None:
    browser = Browser(console_gw)
    missing = browser.client.post(path, json={}, headers={"origin": browser.origin})
    assert missing.status_code == 403 and missing.json()["error"]["details"][0]["reason"] == "CSRF_TOKEN_INVALID"
    wrong = browser.client.post(path, json={}, headers={"origin": browser.origin, "x-gemgate-csrf": "x" * 43})
    assert wrong.status_code == 403
    other = Browser(console_gw)  # another session's token is not this one's
    assert browser.client.post(path, json={}, headers={"origin": browser.origin, "x-gemgate-csrf": other.csrf}).status_code == 403
    no_origin = browser.client.post(path, json={}, headers={"x-gemgate-csrf": browser.csrf})
    assert no_origin.status_code == 403 and no_origin.json()["error"]["details"][0]["reason"] == "ORIGIN_MISSING"


def test_session_cookie_and_sign_out(console_gw: GatewayProcess) -> None:
    browser = Browser(console_gw)
    cookie = browser.set_cookie
    for part in ("HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=43200"):
        assert part in cookie
    assert "Secure" not in cookie  # plain http here; over https the cookie is Secure
    assert ADMIN_KEY not in cookie
    assert browser.get("/keys").status_code == 200
    assert browser.get("/session").json()["csrf"] == browser.csrf
    ended = browser.post("/session/end")
    assert ended.status_code == 200 and "Max-Age=0" in ended.headers["set-cookie"]
    stale = httpx.get(f"{console_gw.base_url}/admin/api/keys", cookies=dict(browser.client.cookies) or None,
                      headers={"cookie": cookie.split(";")[0]}, timeout=30)
    assert stale.status_code == 401


def test_wrong_keys_are_refused_rate_limited_and_never_logged(fresh_gw: GatewayProcess) -> None:
    guesses = [f"guess-{i:03d}-not-the-admin-key" for i in range(len(ROUTES))]
    codes = []
    for (method, path), guess in zip(ROUTES, guesses, strict=True):
        codes.append(call(fresh_gw, method, path, json={}, headers={"authorization": f"Bearer {guess}"}).status_code)
    assert codes[:10] == [403] * 10 and set(codes[10:]) == {429}
    # Now even the right key, and signing in with it, waits out the minute.
    assert call(fresh_gw, "GET", "/keys", headers={"authorization": f"Bearer {ADMIN_KEY}"}).status_code == 429
    signin = call(fresh_gw, "POST", "/session", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert signin.status_code == 429 and "retry-after" in signin.headers
    log = fresh_gw.log.read_text()
    assert "admin access refused for client 127.0.0.1" in log
    assert not any(g in log for g in guesses) and ADMIN_KEY not in log


def test_the_console_page_is_served_and_holds_no_secret(console_gw: GatewayProcess) -> None:
    for path in ("/admin/", "/admin", "/admin/index.html"):
        page = httpx.get(console_gw.base_url + path, timeout=30)
        assert page.status_code == 200 and "Sign in" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert ADMIN_KEY not in page.text
    asset = httpx.get(console_gw.base_url + "/admin/static/console.js", timeout=30)
    assert asset.status_code == 200 and asset.headers["content-type"].startswith("text/javascript")
    again = httpx.get(console_gw.base_url + "/admin/static/console.js", headers={"if-none-match": asset.headers["etag"]})
    assert again.status_code == 304
    assert httpx.get(console_gw.base_url + "/admin/static/../../settings.py").status_code in (400, 404)
    assert httpx.get(console_gw.base_url + "/admin/static/nothing.js").status_code == 404
    assert httpx.get(console_gw.base_url + "/admin/static/off.html").status_code == 404


def test_without_an_admin_key_the_console_is_off(fake_google: FakeGemini, tmp_path_factory: pytest.TempPathFactory) -> None:
    text = config(fake_google).replace('[admin]\nkey = "env:GEMGATE_TEST_ADMIN_KEY"', "")
    workdir = tmp_path_factory.mktemp("console-off")
    proc = GatewayProcess(workdir, text, env={UPSTREAM_KEY_VAR: fake_google.api_key,
                                              "GEMGATE_TEST_UPSTREAM_KEY_B": fake_google.api_key}).start()
    try:
        page = httpx.get(proc.base_url + "/admin/", timeout=30)
        assert page.status_code == 404 and "The console is off" in page.text
        api = httpx.get(proc.base_url + "/admin/api/keys", timeout=30)
        assert api.status_code == 404 and "console is off" in api.json()["error"]["message"]
        signin = httpx.post(proc.base_url + "/admin/api/session", headers={"authorization": "Bearer x"}, timeout=30)
        assert signin.status_code == 404
    finally:
        proc.stop()
