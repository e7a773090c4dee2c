"""A gateway with the console on (an admin key configured), in front of the fake Google
upstream, and the ways a test signs in to it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from tests.fakes.gemini_upstream import FakeGemini
from tests.gateway_process import UPSTREAM_KEY_VAR, GatewayProcess

ADMIN_KEY_VAR = "GEMGATE_TEST_ADMIN_KEY"
ADMIN_KEY = "admin-key-for-console-tests-0123456789"
SECOND_KEY_VAR = "GEMGATE_TEST_UPSTREAM_KEY_B"
MODEL = "gemini-2.5-flash"
FALLBACK_MODEL = "gemini-2.5-pro"


def config(fake: FakeGemini, database_url: str = "sqlite:///{DIR}/gemgate.db", extra: str = "") -> str:
    return f"""
[server]
host = "127.0.0.1"
port = {{PORT}}

[database]
url = "{database_url}"

[admin]
key = "env:{ADMIN_KEY_VAR}"
{extra}

[routing]
circuit_failures = 0

[[providers]]
name = "google"
type = "gemini"
base_url = "{fake.base_url}"
api_keys = ["env:{UPSTREAM_KEY_VAR}", "env:{SECOND_KEY_VAR}"]

[[providers]]
name = "google-b"
type = "gemini"
base_url = "{fake.base_url}"
api_key = "env:{UPSTREAM_KEY_VAR}"

[[models]]
id = "{MODEL}"
provider = "google"

[[models]]
id = "{FALLBACK_MODEL}"
channels = [
  {{ provider = "google", priority = 0 }},
  {{ provider = "google-b", priority = 1 }},
]
"""


def env(fake: FakeGemini) -> dict[str, str]:
    return {UPSTREAM_KEY_VAR: fake.api_key, SECOND_KEY_VAR: fake.api_key, ADMIN_KEY_VAR: ADMIN_KEY}


def start(workdir: Path, fake: FakeGemini, **options: Any) -> GatewayProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    return GatewayProcess(workdir, config(fake, **options), env=env(fake)).start()


def admin(gw: GatewayProcess) -> httpx.Client:
    """A client sending the admin key in a header (a program, not a browser)."""
    return httpx.Client(
        base_url=gw.base_url + "/admin/api",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=30,
    )


class Browser:
    """A signed-in browser, as far as HTTP goes: the session cookie, the CSRF token, and
    the page's own Origin on every call."""

    def __init__(self, gw: GatewayProcess) -> None:
        self.origin = gw.base_url
        self.client = httpx.Client(base_url=gw.base_url + "/admin/api", timeout=30)
        resp = self.client.post(
            "/session", headers={"authorization": f"Bearer {ADMIN_KEY}", "origin": self.origin}
        )
        assert resp.status_code == 200, resp.text
        self.csrf: str = resp.json()["csrf"]
        self.set_cookie = resp.headers["set-cookie"]

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.client.get(path, **kw)

    def post(self, path: str, json: Any = None, **kw: Any) -> httpx.Response:
        headers = {"origin": self.origin, "x-gemgate-csrf": self.csrf, **kw.pop("headers", {})}
        return self.client.post(path, json=json if json is not None else {}, headers=headers, **kw)


def generate(gw: GatewayProcess, key: str, model: str = MODEL, text: str = "hello") -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/v1beta/models/{model}:generateContent",
        headers={"x-goog-api-key": key},
        json={"contents": [{"role": "user", "parts": [{"text": text}]}]},
        timeout=30,
    )
